"""The pure core, table-driven and without a server: plan states, schema diff and rename
pairing, drizzle/Prisma history matching, URL handling and redaction, retry timing, and the
event vocabulary against the README."""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
from pathlib import Path
from typing import Any

import pytest
import structlog
import tenacity

from release_runner.cli.progress import Progress
from release_runner.core import adopt, drift, redact
from release_runner.core.errors import Interrupted
from release_runner.core.events import Event, Level
from release_runner.core.history import HistoryRow, Mode, Status
from release_runner.core.migrations import Directives, Migration
from release_runner.core.objects import Objects
from release_runner.core.plan import State, make_plan
from release_runner.core.settings import libpq_url, parse_duration
from release_runner.run import interrupts, retrying
from release_runner.run.log import emit
from tests.conftest import ROOT


def _migration(version: str, text: str = "SELECT 1;", when: int | None = None) -> Migration:
    return Migration(
        version,
        f"m{version}",
        Path(f"sql/{version}_m.sql"),
        text,
        hashlib.sha256(text.encode()).hexdigest(),
        Directives(),
        "native",
        when,
    )


def _row(version: str, checksum: str, status: Status = Status.APPLIED) -> HistoryRow:
    return HistoryRow(version, f"m{version}", checksum, Mode.TRANSACTION, status)


A, B, C = _migration("1", "SELECT 'a';"), _migration("2", "SELECT 'b';"), _migration("3", "SELECT 'c';")


@pytest.mark.parametrize(
    ("files", "rows", "states"),
    [
        ([A, B], [], [State.PENDING, State.PENDING]),
        ([A, B], [_row("1", A.checksum)], [State.APPLIED, State.PENDING]),
        ([A, B], [_row("1", "edited")], [State.CHANGED, State.PENDING]),
        ([B], [_row("1", A.checksum), _row("2", B.checksum)], [State.APPLIED, State.MISSING]),
        (
            [A, B, C],
            [_row("1", A.checksum), _row("3", C.checksum)],
            [State.APPLIED, State.OUT_OF_ORDER, State.APPLIED],
        ),
        ([A], [_row("1", A.checksum, Status.STARTED)], [State.UNRESOLVED]),
        ([A], [_row("1", A.checksum, Status.FAILED)], [State.UNRESOLVED]),
    ],
)
def test_plan_states(files: list[Migration], rows: list[HistoryRow], states: list[State]) -> None:
    """Each combination of files and history rows gives the documented state."""
    plan = make_plan(files, rows)
    assert [entry.state for entry in plan.entries] == states
    refusing = {State.CHANGED, State.MISSING, State.OUT_OF_ORDER, State.UNRESOLVED}
    assert len(plan.problems) == sum(1 for state in states if state in refusing)
    assert plan.pending == [e.migration for e in plan.entries if e.state is State.PENDING]


def test_every_printed_repair_command_carries_its_reason() -> None:
    """The advice for an unresolved row can be pasted as it is: --reason included."""
    (problem,) = make_plan([A], [_row("1", A.checksum, Status.FAILED)]).problems
    for command in re.findall(r"`([^`]*repair[^`]*)`", problem):
        assert "--reason" in command, problem


def _objects(**kinds: dict[str, dict[str, Any]]) -> Objects:
    return {kind: dict(items) for kind, items in kinds.items()}


INDEX = {
    "table": "public.t",
    "definition": "CREATE INDEX ON public.t USING btree (a)",
    "unique": False,
    "valid": True,
}


@pytest.mark.parametrize(
    ("expected", "actual", "kinds"),
    [
        (
            _objects(column={"public.t.a": {"type": "integer", "nullable": True}}),
            _objects(column={}),
            ["missing"],
        ),
        (
            _objects(column={}),
            _objects(column={"public.t.a": {"type": "integer", "nullable": True}}),
            ["extra"],
        ),
        (
            _objects(column={"public.t.a": {"type": "integer", "nullable": True}}),
            _objects(column={"public.t.a": {"type": "bigint", "nullable": True}}),
            ["changed"],
        ),
        # A renamed index with the same meaning is reported as a rename (a warning)...
        (_objects(index={"public.t_a_idx": INDEX}), _objects(index={"public.t_a_idx1": INDEX}), ["renamed"]),
        # ...but one with another meaning is both missing and extra.
        (
            _objects(index={"public.t_a_idx": INDEX}),
            _objects(
                index={"public.other": {**INDEX, "definition": "CREATE INDEX ON public.t USING btree (b)"}}
            ),
            ["missing", "extra"],
        ),
    ],
)
def test_schema_diff(expected: Objects, actual: Objects, kinds: list[str]) -> None:
    """diff() names each difference once, by kind; renamed generated names pair up and warn."""
    found = drift.diff(expected, actual)
    assert sorted(m.kind for m in found) == sorted(kinds)
    assert all(m.fails == (m.kind in ("missing", "changed")) for m in found)


def test_invalid_index_fails_without_a_snapshot() -> None:
    """health(): an INVALID index fails, a NOT VALID constraint only warns without a snapshot."""
    actual = _objects(
        index={"public.i": {**INDEX, "valid": False}},
        constraint={
            "public.t.c": {
                "table": "public.t",
                "type": "check",
                "definition": "CHECK (a > 0)",
                "validated": False,
            }
        },
    )
    found = {m.kind: m.fails for m in drift.compare(None, actual)}
    assert found == {"invalid": True, "unvalidated": False}


def test_drizzle_history_matches_by_hash_and_names_edits() -> None:
    """A drizzle row matches its file by SHA-256; a row whose `when` names an edited file, and a
    row that matches nothing, are problems."""
    first, second = (
        _migration("0000", "CREATE TABLE a ();", 100),
        _migration("0001", "CREATE TABLE b ();", 200),
    )
    rows = [
        {"id": 1, "hash": first.raw_sha256, "created_at": 100},
        {"id": 2, "hash": "0" * 64, "created_at": 200},
        {"id": 3, "hash": "f" * 64, "created_at": 300},
    ]
    adoption = adopt.match_drizzle(rows, [first, second])
    assert adoption.applied == [first]
    assert len(adoption.problems) == 2
    assert "drizzle applied a different text" in adoption.problems[0]
    assert "matches no file" in adoption.problems[1]


def test_prisma_history_skips_rolled_back_and_refuses_unfinished() -> None:
    """Rolled-back Prisma rows are not applied; unfinished, folderless and edited ones refuse."""
    first, second = _migration("20240101_a", "SELECT 1;"), _migration("20240102_b", "SELECT 2;")
    rows: list[dict[str, Any]] = [
        {
            "migration_name": first.version,
            "checksum": first.raw_sha256,
            "finished_at": 1,
            "rolled_back_at": None,
        },
        {"migration_name": second.version, "checksum": "x", "finished_at": 1, "rolled_back_at": 1},
        {"migration_name": second.version, "checksum": "edited", "finished_at": 1, "rolled_back_at": None},
        {"migration_name": "20240103_c", "checksum": "x", "finished_at": None, "rolled_back_at": None},
        {"migration_name": "20240104_d", "checksum": "x", "finished_at": 1, "rolled_back_at": None},
    ]
    adoption = adopt.match_prisma(rows, [first, second])
    assert adoption.applied == [first]
    assert ["edited after Prisma" in p for p in adoption.problems] == [True, False, False]
    assert "never finished" in adoption.problems[1] and "has no folder" in adoption.problems[2]


@pytest.mark.parametrize(
    ("url", "kept", "dropped"),
    [
        ("postgresql://u:p@h/db", "postgresql://u:p@h/db", []),
        ("postgresql://u:p@h/db?sslmode=require", "postgresql://u:p@h/db?sslmode=require", []),
        (
            "postgresql://u:p@h/db?schema=app&connection_limit=1",
            "postgresql://u:p@h/db?options=-c%20search_path%3Dapp",
            ["schema", "connection_limit"],
        ),
        ("host=h dbname=db", "host=h dbname=db", []),
    ],
)
def test_prisma_url_parameters_are_made_libpq_ready(url: str, kept: str, dropped: list[str]) -> None:
    """Prisma's own parameters are dropped and named; schema= becomes search_path, and is
    returned as the schema the URL names."""
    assert libpq_url(url) == (kept, dropped, "app" if "schema=app" in url else None)


@pytest.mark.parametrize(
    ("text", "secret_free"),
    [
        ("could not connect to postgresql://u:hunter22@h/db", "could not connect to postgresql://[redacted]"),
        ("host=h password=hunter22 dbname=x", "host=h password=[redacted] dbname=x"),
        ("the tail hunter22 of a password", "the tail [redacted] of a password"),
    ],
)
def test_redaction(text: str, secret_free: str) -> None:
    """URLs, password= pairs and registered secrets never survive redact()."""
    redact.add_secret("hunter22")
    assert redact.redact(text) == secret_free
    assert redact.redact_value({"a": [text]}) == {"a": [secret_free]}


@pytest.mark.parametrize(
    ("text", "seconds"), [("500ms", 0.5), ("5s", 5.0), ("2m", 120.0), ("1h", 3600.0), ("3", 3.0)]
)
def test_durations(text: str, seconds: float) -> None:
    """Every documented duration form parses."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("draw", [0.0, 0.5, 1.0])
def test_backoff_grows_is_capped_and_jittered(draw: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """Waits double from `initial`, never exceed `maximum`, and are at least half the base."""
    monkeypatch.setattr(random, "uniform", lambda low, high: low + draw * (high - low))
    wait = retrying.equal_jitter(0.25, 5.0)
    for attempt in range(1, 10):
        base = min(5.0, 0.25 * 2 ** (attempt - 1))
        state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
        state.attempt_number = attempt
        assert base / 2 <= wait(state) <= base


class _Clock:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _never_reported(_: tenacity.RetryCallState) -> None:
    pass


@pytest.mark.parametrize("reserve", [0.0, 1.5])
def test_retries_never_wait_past_the_deadline(reserve: float) -> None:
    """With a deadline, the waits add up to at most the time left, no attempt starts with less
    than `reserve` left, and the error of the last attempt is raised as it is."""
    clock = _Clock()
    attempts: list[float] = []

    def fail() -> None:
        attempts.append(clock.now)
        raise TimeoutError("still down")

    deadline = retrying.Deadline(9.0, reserve=reserve, clock=lambda: clock.now)
    policy = retrying.policy(
        lambda _: True,
        _never_reported,
        wait=retrying.equal_jitter(1.0, 4.0),
        deadline=deadline,
        sleep=clock.sleep,
    )
    with pytest.raises(TimeoutError, match="still down"):
        policy(fail)
    assert len(attempts) > 2
    assert sum(clock.sleeps) <= 9.0 - reserve + 1e-9
    assert max(attempts) <= 9.0 - reserve + 1e-9


def test_retries_stop_at_the_attempt_count_and_on_other_errors() -> None:
    """`attempts` bounds the runs; an error that is not retryable is raised at once; each retry
    is reported before its wait with the attempt number and the delay."""
    clock = _Clock()
    calls = []
    reported: list[tuple[int, float]] = []

    def fail() -> None:
        calls.append(1)
        raise TimeoutError

    def report(state: tenacity.RetryCallState) -> None:
        assert isinstance(retrying.failure(state), TimeoutError)
        reported.append((state.attempt_number, retrying.delay(state)))

    no_deadline = retrying.Deadline(None)
    policy = retrying.policy(
        lambda _: True,
        report,
        wait=retrying.equal_jitter(0.1, 1),
        deadline=no_deadline,
        attempts=3,
        sleep=clock.sleep,
    )
    with pytest.raises(TimeoutError):
        policy(fail)
    assert len(calls) == 3 and len(clock.sleeps) == 2
    assert [number for number, _ in reported] == [1, 2] and [d for _, d in reported] == clock.sleeps
    other = retrying.policy(
        lambda e: isinstance(e, TimeoutError),
        report,
        wait=retrying.equal_jitter(0.1, 1),
        deadline=no_deadline,
    )
    with pytest.raises(KeyError):
        other(lambda: {"a": 1}["x"])


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


def test_levels() -> None:
    """Failures are errors, retries warnings, progress info; an emitter may override."""
    with structlog.testing.capture_logs() as seen:
        emit(Event.MIGRATION_FAILED)
        emit(Event.MIGRATION_RETRY)
        emit(Event.MIGRATION_APPLIED)
        emit(Event.VERIFY_MISMATCH, Level.WARNING)
    assert [entry["log_level"] for entry in seen] == ["error", "warning", "info", "warning"]
    assert seen[0]["event"] == "migration.failed"


def test_every_event_is_documented_and_every_documented_event_exists() -> None:
    """The README's event table and the Event enum name the same events."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Log events", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z_]+\.[a-z_]+)`", section))
    assert documented == {str(event) for event in Event}


def test_a_signal_during_a_deferred_block_is_raised_after_it() -> None:
    """interrupts.deferred(): a SIGTERM that arrives inside the block lets the block finish
    (what it records and reports happens whole), then interrupts."""
    saved = {signum: signal.getsignal(signum) for signum in interrupts.SIGNALS}
    done: list[str] = []
    try:
        interrupts.install()
        with pytest.raises(Interrupted) as raised, interrupts.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("reported")
            done.append("marked")
        assert raised.value.signum == signal.SIGTERM
        assert done == ["reported", "marked"]
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
