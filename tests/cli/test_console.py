"""cli/console.py: every event has words on a terminal, or none; never a raw event name with
key=value pairs, and never a Python value a person cannot act on."""

from __future__ import annotations

import io
from typing import Any

import pytest
import structlog

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
    assert retry == "connecting: retry 1 in 174 ms (connection refused Is the server running?)"
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


def test_off_a_terminal_a_wait_is_printed_once_until_it_changes() -> None:
    """The same blockers reported every second are one line; other blockers, a new line (on a
    terminal the live line carries them instead: tests/e2e/test_terminal.py)."""
    console = _console()

    def line(pid: int) -> Any:
        blockers = [
            {"pid": pid, "application_name": "psql", "state": "idle in transaction", "query": "LOCK a"}
        ]
        facts = {"event": "migration.waiting", "level": "warning", "version": "0002", "blockers": blockers}
        return console(None, "", facts)

    assert line(7) == "waiting for a lock held by pid 7 (psql, idle in transaction): LOCK a"
    with pytest.raises(structlog.DropEvent):
        line(7)
    assert "pid 8" in line(8)
    with pytest.raises(structlog.DropEvent):  # the run moves on: the next wait is news again
        console(None, "", {"event": "migration.started", "level": "info", "file": "sql/0003_c.sql"})
    assert "pid 8" in line(8)


def test_differences_are_one_table_with_a_row_per_changed_attribute() -> None:
    """verify.mismatch events are gathered and shown as one table when the next event comes:
    a row per changed attribute (expected, found), a whole object in one row with what to do."""
    console = _console()
    changed = {
        "kind": "changed",
        "object_type": "function",
        "name": "public.f()",
        "expected": {"config": ["search_path=public"], "strict": False, "body_md5": "a"},
        "actual": {"config": [], "strict": False, "body_md5": "b"},
        "describe": "changed function public.f(): ...",
    }
    missing = {
        "kind": "missing",
        "object_type": "table",
        "name": "public.orders",
        "describe": "missing table public.orders (with its 5 columns)",
    }
    for facts in (changed, missing):
        with pytest.raises(structlog.DropEvent):
            console(None, "", {"event": "verify.mismatch", "level": "error", **facts})
    shown = console(None, "", {"event": "release.error", "level": "error", "error": "drift"})
    lines = [line.rstrip() for line in shown.splitlines()]
    assert lines[0].split() == ["OBJECT", "ATTRIBUTE", "EXPECTED", "FOUND"]
    assert lines[1].split() == ["changed", "function", "public.f()", "config", "search_path=public", "none"]
    assert lines[2].split()[:3] == ["whole", "definition", "the"]
    assert lines[3].split() == ["missing", "table", "public.orders", "(with", "its", "5", "columns)"]
    assert len(lines) == 4
