"""cli/console.py: every event has words on a terminal, or none; never a raw event name with
key=value pairs, and never a Python value a person cannot act on."""

from __future__ import annotations

import io

from release_runner.cli.console import Console
from release_runner.core.events import Event, Level, level_of


def _console() -> Console:
    return Console(io.StringIO(), colour=False)


def test_every_event_has_words_or_none() -> None:
    for event in Event:
        if event in (Event.FLEET_STARTED, Event.TARGET_FINISHED):
            continue  # a fleet's lines: cli/fleet_view.py
        text = _console().render(event, level_of(event), {"command": "migrate"})
        assert text is None or not text.startswith(str(event)), (event, text)
        assert text is None or "=" not in text.split(":")[0], (event, text)


def test_a_retry_reason_reads_on_one_line_and_a_hidden_query_says_why() -> None:
    retry = _console().render(
        Event.DB_CONNECT_RETRY,
        Level.WARNING,
        {"attempt": 1, "delay_ms": 174, "reason": "connection refused\n\tIs the server running?"},
    )
    assert retry == "  connecting: retry 1 in 174 ms (connection refused Is the server running?)"
    waiting = _console().render(
        Event.MIGRATION_WAITING,
        Level.WARNING,
        {
            "blockers": [
                {"pid": 7, "application_name": "app", "state": None, "query": "<insufficient privilege>"}
            ]
        },
    )
    assert waiting is not None and "state hidden" in waiting and "pg_read_all_stats" in waiting
