"""Changing the history by hand, each step checked against the live schema: `repair` resolves a
record after a human fixed what it is about, `baseline` adopts a database built without any
history."""

from __future__ import annotations

from dataclasses import replace

from release_runner.core import schema
from release_runner.core.errors import DriftError, UsageError
from release_runner.core.events import Event
from release_runner.core.history import HistoryRow, Mode, RepairAction, Status
from release_runner.core.settings import Settings, fly_context
from release_runner.db.history import RunContext
from release_runner.run import gate as refusals
from release_runner.run import session
from release_runner.run import verify as verification
from release_runner.run.log import emit


def repair(settings: Settings, version: str, action: RepairAction, reason: str, run_id: str) -> None:
    """Resolve a record after a human fixed what it is about: `applied` marks a failed or
    unfinished no-transaction migration done, `forget` deletes its row so the next migrate runs
    it again, `accept-checksum` records the text of a deliberately edited applied file (only
    once the live schema matches the snapshot)."""
    # Accepting an edit is checked against the snapshot, which must exist; read before locking.
    expected = (
        verification.expected_schema(replace(settings, require_snapshot=True))
        if action is RepairAction.ACCEPT_CHECKSUM
        else None
    )
    with session.locked(settings) as locked:
        conn = locked.conn
        row = locked.history.row(conn, version)
        if action is RepairAction.ACCEPT_CHECKSUM:
            _accept_checksum(locked, row, version, expected)
        elif row is None or row.applied:
            raise UsageError(
                f"version {version} has no failed or unfinished record; repair only resolves "
                "those (see `release-runner status`)"
            )
        elif action is RepairAction.APPLIED:
            locked.history.resolve(conn, version, Status.APPLIED)
        else:
            locked.history.delete_row(conn, version)
        assert row is not None
        emit(
            Event.HISTORY_REPAIRED,
            version=version,
            action=action,
            reason=reason,
            previous_status=str(row.status),
            by=RunContext(locked.history, run_id, {}).applied_by,
        )


def _accept_checksum(
    locked: session.Session, row: HistoryRow | None, version: str, expected: schema.Snapshot | None
) -> None:
    """Re-record an applied file's checksum, after checking the live schema against the
    snapshot: accepting an edit must not hide a database that lacks what the file now says."""
    settings = locked.settings
    migration = next((m for m in refusals.load(settings).migrations if m.version == version), None)
    if row is None or not row.applied or migration is None:
        raise UsageError(
            f"version {version} is not an applied migration with a file; accept-checksum is for an "
            "applied file edited on purpose (see `release-runner status`)"
        )
    if migration.checksum == row.checksum:
        raise UsageError(f"{migration.label}: its checksum already matches the history; nothing to accept")
    verification.verify_live(locked.conn, settings, expected)
    locked.history.set_checksum(locked.conn, version, migration.checksum)


def baseline(settings: Settings, version: str | None, force: bool, run_id: str) -> int:
    """Adopt a database built without any history (`drizzle-kit push`, by hand): compare its
    schema with what the migrations up to `version` produce, and only if nothing is missing or
    changed record them as applied. Returns how many were recorded."""

    found = refusals.load(settings)
    versions = [m.version for m in found.migrations]
    if version is not None and version not in versions:
        raise UsageError(f"no migration with version {version!r}; see `release-runner status`")
    upto = found.migrations[: versions.index(version or versions[-1]) + 1]
    expected: schema.Snapshot | None = None
    if len(upto) == len(found.migrations):
        expected = schema.load(settings.snapshot_file)
    if expected is None:
        expected = verification.replay(settings, upto)
    with session.locked(settings) as locked:
        conn = locked.conn
        if locked.history.read(conn):
            raise UsageError(
                "this database already has release-runner history; baseline is only for a "
                "database built without it (use `migrate`)"
            )
        actual = verification.live_schema(conn, settings).objects
        differences = verification.compared(settings, expected.objects, actual)
        failing = verification.report([m for m in differences if m.fails], lambda _: True)
        if failing and not force:
            raise DriftError(
                f"baseline refused: the database lacks or differs in {len(failing)} object(s) that "
                f"the migrations up to {upto[-1].version} create; nothing was recorded",
                **verification.listing(failing, most=len(failing)),
                differences=len(failing),
            )
        if failing:
            emit(
                Event.BASELINE_FORCED,
                differences=len(failing),
                reason="--force: recording migrations as applied although the schema differs",
            )
        locked.history.ensure(conn)
        RunContext(locked.history, run_id, fly_context()).record(conn, upto, Mode.BASELINE)
        emit(Event.BASELINE_RECORDED, count=len(upto), version=upto[-1].version, forced=bool(failing))
    return len(upto)
