"""The face: the only wing that knows click, terminals and exit codes.

Options become Settings, structlog is configured once (JSON lines off a terminal, the console
view on one, redaction as a processor, the run's context in contextvars), the status and plan
documents are printed, and every run ends with one `release.finished` line and its exit code.
Nothing imports this wing but `__main__`.
"""
