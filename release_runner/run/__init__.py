"""Orchestration: the only wing that holds a connection.

The session (connect, probe, lock, reconnect; owns its connection), the gate (files, history
reconciled, lint, refusal), the executor (one migration: budget, retries, settle, advice),
verification and the scratch replay. It drives `db/` with decisions made by `core/`, retries
with tenacity and reports with structlog; it knows nothing of click or terminals. Kept empty of
imports: `__main__` takes `run.interrupts` before anything else is loaded.
"""
