"""How a run reports: every event of core/events.py goes to structlog, at its level.

The run never prints. The CLI configures structlog once (processors, the renderer, the run's
context); a library caller configures it as it likes, and `structlog.testing.capture_logs`
sees every event in tests. The logger is not cached, so a later configuration still applies.
"""

from __future__ import annotations

from typing import Any

import structlog

from release_runner.core.events import Event, Level, level_of

_logger = structlog.get_logger("release_runner")


def emit(event: Event, level: Level | None = None, /, **facts: Any) -> None:
    """Report one event with its facts, at its default level unless `level` says otherwise."""
    _logger.log(_NUMBERS[level or level_of(event)], event, **facts)


# structlog's numeric levels are the standard library's.
_NUMBERS = {Level.INFO: 20, Level.WARNING: 30, Level.ERROR: 40}
