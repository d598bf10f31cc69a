"""run/log.py: events reach structlog at their levels."""

from __future__ import annotations

import structlog

from release_runner.core.events import Event, Level
from release_runner.run.log import emit


def test_levels() -> None:
    """Failures are errors, retries warnings, progress info; an emitter may override."""
    with structlog.testing.capture_logs() as seen:
        emit(Event.MIGRATION_FAILED)
        emit(Event.MIGRATION_RETRY)
        emit(Event.MIGRATION_APPLIED)
        emit(Event.VERIFY_MISMATCH, Level.WARNING)
    assert [entry["log_level"] for entry in seen] == ["error", "warning", "info", "warning"]
    assert seen[0]["event"] == "migration.failed"
