"""The events the core emits, as one typed vocabulary, and the listeners that receive them.

The core never prints: it calls `emit(Event.X, **facts)`. The CLI subscribes a renderer (JSON
lines or the console) and a `Progress` that the summary line is built from; a library caller
subscribes whatever it wants, or nothing. Every name here is documented in the README, and a
test holds the two lists together.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Event(StrEnum):
    """Every event name the runner can emit: dotted, stable, documented."""

    RELEASE_STARTED = "release.started"
    RELEASE_ERROR = "release.error"
    RELEASE_CRASHED = "release.crashed"
    RELEASE_FINISHED = "release.finished"
    MIGRATIONS_IGNORED = "migrations.ignored"
    DB_CONNECT_RETRY = "db.connect_retry"
    DB_CONNECTED = "db.connected"
    LOCK_WAITING = "lock.waiting"
    LOCK_ACQUIRED = "lock.acquired"
    LOCK_TAKEN_OVER = "lock.taken_over"
    HISTORY_IMPORTED = "history.imported"
    HISTORY_REFUSED = "history.refused"
    HISTORY_VALIDATED = "history.validated"
    HISTORY_REPAIRED = "history.repaired"
    PREFLIGHT_WARNING = "preflight.warning"
    PREFLIGHT_ERROR = "preflight.error"
    MIGRATION_UNWRAPPED = "migration.unwrapped"
    MIGRATION_STARTED = "migration.started"
    MIGRATION_WAITING = "migration.waiting"
    MIGRATION_RETRY = "migration.retry"
    MIGRATION_ALREADY_APPLIED = "migration.already_applied"
    MIGRATION_RECONCILED = "migration.reconciled"
    MIGRATION_CREATED = "migration.created"
    MIGRATION_APPLIED = "migration.applied"
    MIGRATION_DEFERRED = "migration.deferred"
    MIGRATION_RELEASED = "migration.released"
    MIGRATION_FAILED = "migration.failed"
    VERIFY_MISMATCH = "verify.mismatch"
    VERIFY_PASSED = "verify.passed"
    VERIFY_NO_SNAPSHOT = "verify.no_snapshot"
    VERIFY_SKIPPED = "verify.skipped"
    VERIFY_SERVER_DIFFERS = "verify.server_differs"
    SCRATCH_READY = "scratch.ready"
    SCHEMA_CREATED = "schema.created"
    SNAPSHOT_WRITTEN = "snapshot.written"
    CHECK_REPLAYED = "check.replayed"
    BASELINE_FORCED = "baseline.forced"
    BASELINE_RECORDED = "baseline.recorded"


class Level(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


# Events that are not `info` by default; an emitter may still raise or lower one (a mismatch
# is an error only where it fails the run).
_DEFAULT_LEVEL = {
    Event.RELEASE_ERROR: Level.ERROR,
    Event.RELEASE_CRASHED: Level.ERROR,
    Event.MIGRATIONS_IGNORED: Level.WARNING,
    Event.DB_CONNECT_RETRY: Level.WARNING,
    Event.LOCK_TAKEN_OVER: Level.WARNING,
    Event.HISTORY_REFUSED: Level.ERROR,
    Event.HISTORY_REPAIRED: Level.WARNING,
    Event.PREFLIGHT_WARNING: Level.WARNING,
    Event.PREFLIGHT_ERROR: Level.ERROR,
    Event.MIGRATION_WAITING: Level.WARNING,
    Event.MIGRATION_RETRY: Level.WARNING,
    Event.MIGRATION_FAILED: Level.ERROR,
    Event.MIGRATION_RECONCILED: Level.WARNING,
    Event.VERIFY_MISMATCH: Level.ERROR,
    Event.VERIFY_NO_SNAPSHOT: Level.WARNING,
    Event.VERIFY_SKIPPED: Level.WARNING,
    Event.VERIFY_SERVER_DIFFERS: Level.WARNING,
    Event.BASELINE_FORCED: Level.WARNING,
}

Listener = Callable[[Event, Level, dict[str, Any]], None]
_listeners: list[Listener] = []


def emit(event: Event, level: Level | None = None, /, **facts: Any) -> None:
    """Hand one event to every listener, in the order they subscribed."""
    chosen = level or _DEFAULT_LEVEL.get(event, Level.INFO)
    for listener in list(_listeners):
        listener(event, chosen, facts)


@contextmanager
def listening(*listeners: Listener) -> Iterator[None]:
    """Subscribe listeners for the duration of a block."""
    _listeners.extend(listeners)
    try:
        yield
    finally:
        for listener in listeners:
            _listeners.remove(listener)


@dataclass(eq=False, repr=False)
class Progress:
    """How far a run got, derived from its events: what the summary line reports whatever
    happened, including after an interruption. It counts the migrations of the target database
    only, from the moment `history.validated` announced its plan: a scratch replay's
    (`check`, `snapshot`, `baseline`) are not what a summary's `applied` means."""

    applied: list[str] = field(default_factory=list)
    pending: int = 0
    deferred: int = 0
    migration: str | None = None
    started: float = field(default_factory=time.monotonic)
    target: bool = False

    def summary(self, command: str | None, status: str, code: int, **facts: Any) -> dict[str, Any]:
        """The facts of `release.finished`."""
        return {
            "command": command,
            "status": status,
            "exit_code": code,
            "applied": len(self.applied),
            "pending": self.pending,
            "deferred": self.deferred,
            "migration": self.migration,
            "duration_ms": round((time.monotonic() - self.started) * 1000),
            **facts,
        }

    def __call__(self, event: Event, _: Level, facts: dict[str, Any]) -> None:
        if event is Event.HISTORY_VALIDATED:
            self.pending = int(facts["pending"])
            self.target = True
        elif not self.target:
            return
        elif event is Event.MIGRATION_DEFERRED:
            self.deferred += 1
        elif event is Event.MIGRATION_STARTED:
            self.migration = str(facts["file"])  # named in the summary if it fails or is cut short
        elif event in (Event.MIGRATION_APPLIED, Event.MIGRATION_ALREADY_APPLIED):
            # Counted as applied by this run only if this run's COMMIT did it.
            if event is Event.MIGRATION_APPLIED or facts.get("ours"):
                self.applied.append(str(facts["version"]))
            self.pending -= 1
            self.migration = None
