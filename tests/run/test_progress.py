"""cli/progress.py: the summary's counts, derived from the events."""

from __future__ import annotations

from typing import Any

from release_runner.core.events import Event
from release_runner.run.progress import Progress


def test_progress_counts_the_target_only() -> None:
    """The summary's counts come from the events: a scratch replay before history.validated is
    not counted, the target's migrations are."""
    progress = Progress()
    events: list[dict[str, Any]] = [
        {"event": Event.MIGRATION_APPLIED, "version": "1"},  # a scratch replay
        {"event": Event.HISTORY_VALIDATED, "applied": 0, "pending": 2},
        {"event": Event.MIGRATION_STARTED, "file": "sql/2_b.sql", "version": "2"},
        {"event": Event.MIGRATION_APPLIED, "version": "2"},
        {"event": Event.MIGRATION_STARTED, "file": "sql/3_c.sql", "version": "3"},
    ]
    for event in events:
        assert progress(None, "info", event) is event
    assert (progress.applied, progress.pending, progress.migration) == (["2"], 1, "sql/3_c.sql")
