"""The events a run reports, as one typed vocabulary: the names are the contract with log
searches and dashboards (documented in the README; a test holds the two lists together), and
each has a default level.

Pure: the run reports through structlog (`run/log.py`), the CLI configures how events are
rendered (`cli/log.py`). This module only names them.
"""

from __future__ import annotations

from enum import StrEnum


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
    PREFLIGHT_DATA = "preflight.data"
    PREFLIGHT_DATA_UNKNOWN = "preflight.data_unknown"
    MIGRATION_UNWRAPPED = "migration.unwrapped"
    MIGRATION_STARTED = "migration.started"
    MIGRATION_WAITING = "migration.waiting"
    MIGRATION_RETRY = "migration.retry"
    MIGRATION_ALREADY_APPLIED = "migration.already_applied"
    MIGRATION_LOST = "migration.lost"
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
    VERIFY_ANOTHER_DATABASE = "verify.another_database"
    SCRATCH_READY = "scratch.ready"
    SCHEMA_CREATED = "schema.created"
    SNAPSHOT_WRITTEN = "snapshot.written"
    CHECK_REPLAYED = "check.replayed"
    BASELINE_FORCED = "baseline.forced"
    BASELINE_RECORDED = "baseline.recorded"
    FLEET_STARTED = "fleet.started"
    TARGET_FINISHED = "target.finished"


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
    Event.PREFLIGHT_DATA: Level.ERROR,
    Event.PREFLIGHT_DATA_UNKNOWN: Level.WARNING,
    Event.MIGRATION_WAITING: Level.WARNING,
    Event.MIGRATION_RETRY: Level.WARNING,
    Event.MIGRATION_FAILED: Level.ERROR,
    Event.MIGRATION_RECONCILED: Level.WARNING,
    Event.VERIFY_MISMATCH: Level.ERROR,
    Event.VERIFY_NO_SNAPSHOT: Level.WARNING,
    Event.VERIFY_SKIPPED: Level.WARNING,
    Event.VERIFY_SERVER_DIFFERS: Level.WARNING,
    Event.VERIFY_ANOTHER_DATABASE: Level.ERROR,
    Event.BASELINE_FORCED: Level.WARNING,
}


def level_of(event: Event) -> Level:
    """The level an event is reported at unless its emitter says otherwise."""
    return _DEFAULT_LEVEL.get(event, Level.INFO)
