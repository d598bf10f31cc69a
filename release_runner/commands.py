"""The commands, as plain functions a library caller can use (like Alembic's `command.py`):
each takes Settings, emits events, returns a value, and raises a ReleaseError subclass on
anything but success. The CLI is a thin shell over them.

migrate: read the files -> connect and lock -> validate history -> preflight -> apply -> verify.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from release_runner.core import drift, migrations, phases, schema
from release_runner.core import plan as plan_module
from release_runner.core.errors import DriftError, ReleaseError, UnreachableError, UsageError
from release_runner.core.events import Event
from release_runner.core.history import HistoryRow, Mode, Status
from release_runner.core.migrations import MigrationSet
from release_runner.core.preflight import Prepared
from release_runner.core.settings import Settings, fly_context
from release_runner.db.connection import Connection, DatabaseError
from release_runner.db.history import RunContext
from release_runner.run import gate as refusals
from release_runner.run import session
from release_runner.run import verify as verification
from release_runner.run.log import emit


def migrate(settings: Settings, run_id: str) -> None:
    """The deploy-time command."""
    started = time.monotonic()
    deadline = None if settings.time_budget is None else started + settings.time_budget
    found = refusals.load(settings)
    expected = verification.expected_schema(settings) if settings.verify else None
    try:
        _migrate_locked(settings, run_id, found, expected, deadline)
    except UnreachableError as error:
        if "holders" in error.fields:  # another runner kept the lock: say what waits, unlocked
            error.fields["pending"] = _pending_without_lock(settings, found)
        raise


def _pending_without_lock(settings: Settings, found: MigrationSet) -> int | None:
    """How many migrations this release phase would apply, read without the lock (None when
    that cannot be read either)."""
    try:
        with session.connected(settings) as conn:
            current = refusals.current_plan(conn, settings, found)
    except (ReleaseError, DatabaseError):
        return None
    return len(phases.choose(current, settings.post_deploy, settings.release_id).apply)


def _migrate_locked(
    settings: Settings,
    run_id: str,
    found: MigrationSet,
    expected: schema.Snapshot | None,
    deadline: float | None,
) -> None:
    with session.locked(settings, deadline) as locked:
        context = RunContext(locked.history, run_id, fly_context())

        def validate(conn: Connection) -> plan_module.Plan:
            # Safe to run again after a lost connection: it creates what is missing, imports
            # what is not imported yet, and reads the rest.
            verification.ensure_prisma_schema(conn, settings)
            locked.history.ensure(conn)
            return refusals.validated_plan(conn, settings, found, context)

        current = locked.read(validate)
        context = replace(context, deferred=frozenset(current.deferred))
        phase = phases.choose(current, settings.post_deploy, settings.release_id)
        if expected is not None and phase.defer:
            # Refused before anything changes: verification could not be exact afterwards.
            phases.expected_with_deferred(
                expected, [m.version for m in phase.defer], str(settings.snapshot_file)
            )
        emit(
            Event.HISTORY_VALIDATED,
            applied=sum(1 for e in current.entries if e.state is plan_module.State.APPLIED),
            pending=len(phase.apply),
            deferred=len(phase.defer),
            phase=phase.name,
            release_id=settings.release_id,
        )
        prepared = (
            locked.read(lambda conn: refusals.preflight(phase.apply, settings, conn)) if phase.apply else []
        )
        _defer(locked, context, phase, current)
        if prepared:
            from release_runner.run import executor

            executor.apply_all(locked, prepared, context, deadline)
        if not settings.verify:
            emit(Event.VERIFY_SKIPPED, reason="--no-verify given; the schema was not checked")
            return
        locked.read(lambda conn: verification.verify_live(conn, settings, expected))


def _defer(
    locked: session.Session, context: RunContext, phase: phases.Phase, current: plan_module.Plan
) -> None:
    """Record the post-deploy migrations this run leaves for later, and say why each waits;
    say why each post-deploy migration it applies runs now."""
    if phase.defer:
        locked.read(
            lambda conn: locked.history.defer(conn, context.run_id, phase.defer, locked.settings.release_id)
        )
    for migration in phase.defer:
        emit(
            Event.MIGRATION_DEFERRED,
            version=migration.version,
            name=migration.name,
            file=migration.label,
            release_id=locked.settings.release_id,
            reason=phases.defer_reason(locked.settings.release_id, current.deferred.get(migration.version)),
        )
    for version, reason in phase.released.items():
        emit(Event.MIGRATION_RELEASED, version=version, reason=reason)


def verify(settings: Settings) -> None:
    """Read-only: compare the live schema with the snapshot; raises DriftError on differences."""
    expected = verification.expected_schema(settings)
    with session.connected(settings) as conn:
        verification.verify_live(conn, settings, expected)


def status(settings: Settings) -> plan_module.Plan:
    """Read-only: the state of every migration (never creates the history table)."""
    found = refusals.load(settings)
    with session.connected(settings) as conn:
        return refusals.current_plan(conn, settings, found)


@dataclass(eq=False, repr=False)
class PlanReport:
    """What `migrate` would do now: pending migrations as prepared, and refusals."""

    plan: plan_module.Plan
    prepared: list[Prepared]
    settings: Settings
    phase: phases.Phase

    def as_dict(self) -> dict[str, Any]:
        items = [
            {
                "version": item.migration.version,
                "name": item.migration.name,
                "file": item.migration.label,
                "transaction_mode": item.transaction_mode,
                "statements": len(item.statements),
                "lock_timeout_ms": round(item.lock_timeout(self.settings.lock_timeout) * 1000),
                "findings": [{"severity": f.severity, **f.as_event()} for f in item.findings],
            }
            for item in self.prepared
        ]
        release_id = self.settings.release_id
        deferred = [
            {
                "version": m.version,
                "name": m.name,
                "file": m.label,
                "reason": phases.defer_reason(release_id, self.plan.deferred.get(m.version)),
            }
            for m in self.phase.defer
        ]
        return {
            "phase": self.phase.name,
            "release_id": release_id,
            "pending": items,
            "deferred": deferred,
            "released": [{"version": v, "reason": why} for v, why in self.phase.released.items()],
            "total": len(items),
            "refusals": self.plan.problems,
            "errors": sum(len(item.errors) for item in self.prepared),
            "warnings": sum(len(item.warnings) for item in self.prepared),
        }


def plan_report(settings: Settings) -> PlanReport:
    """Read-only: what would run, with preflight findings. Writes nothing, not even the history
    table."""
    found = refusals.load(settings)
    with session.connected(settings) as conn:
        current = refusals.current_plan(conn, settings, found)
        phase = phases.choose(current, settings.post_deploy, settings.release_id)
        prepared = refusals.lint(phase.apply, settings, conn)
    return PlanReport(current, prepared, settings, phase)


def snapshot(settings: Settings) -> Path:
    """Replay every migration into a scratch database and write the expected-schema file."""

    found = refusals.load(settings)
    replayed = verification.replay(settings, found.migrations)
    path = settings.snapshot_file
    path.write_text(schema.dump(replayed))
    emit(Event.SNAPSHOT_WRITTEN, file=str(path), objects=sum(len(v) for v in replayed.objects.values()))
    return path


def check(settings: Settings) -> int:
    """CI gate: the directory reads, every migration applies from empty, and the committed
    snapshot matches what they produce. Returns how many migrations were replayed."""

    found = refusals.load(settings)
    snapshot = schema.load(settings.snapshot_file)
    replayed = verification.replay(settings, found.migrations)
    actual = replayed.objects
    emit(Event.CHECK_REPLAYED, migrations=len(found.migrations))
    if snapshot is None:
        raise DriftError(
            f"{settings.snapshot_file}: no expected schema; run `release-runner snapshot` and "
            "commit the file",
            file=str(settings.snapshot_file),
        )
    differences = verification.compared(settings, snapshot.objects, actual)
    # Both states a deploy verifies: the full schema, and the schema while each post-deploy
    # migration waits.
    for version in sorted(set(snapshot.post_deploy) | set(replayed.post_deploy)):
        recorded = phases.undone(snapshot.objects, [snapshot.post_deploy.get(version, {})])
        replayed_before = phases.undone(actual, [replayed.post_deploy.get(version, {})])
        waiting = verification.compared(settings, recorded, replayed_before)
        if version not in snapshot.post_deploy or version not in replayed.post_deploy:
            waiting = waiting or [drift.Mismatch("missing", "post-deploy state of", version)]
        differences += [m for m in waiting if m not in differences]
    mismatches = verification.report(differences, lambda _: True)
    if mismatches:
        raise DriftError(
            f"{settings.snapshot_file} is stale: the migrations produce {len(mismatches)} "
            "difference(s) from it; run `release-runner snapshot` and commit the result: "
            + verification.listing(mismatches),
            differences=len(mismatches),
        )
    emit(Event.VERIFY_PASSED, checked=sum(len(v) for v in actual.values()), snapshot=True)
    return len(found.migrations)


def repair(settings: Settings, version: str, action: str, reason: str, run_id: str) -> None:
    """Resolve a record after a human fixed what it is about: `applied` marks a failed or
    unfinished no-transaction migration done, `forget` deletes its row so the next migrate runs
    it again, `accept-checksum` records the text of a deliberately edited applied file (only
    once the live schema matches the snapshot)."""
    if action not in ("applied", "forget", "accept-checksum"):
        raise UsageError(f"repair takes `applied`, `forget` or `accept-checksum`, not {action!r}")
    # Accepting an edit is checked against the snapshot, which must exist; read before locking.
    expected = (
        verification.expected_schema(replace(settings, require_snapshot=True))
        if action == "accept-checksum"
        else None
    )
    with session.locked(settings) as locked:
        conn = locked.conn
        row = locked.history.row(conn, version)
        if action == "accept-checksum":
            _accept_checksum(locked, row, version, expected)
        elif row is None or row.applied:
            raise UsageError(
                f"version {version} has no failed or unfinished record; repair only resolves "
                "those (see `release-runner status`)"
            )
        elif action == "applied":
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
                f"the migrations up to {upto[-1].version} create; nothing was recorded: "
                + verification.listing(failing, most=len(failing)),
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


def new(settings: Settings, name: str) -> Path:
    """Create the next native migration file, `<version>_<name>.sql`: the next number in the
    width the directory uses, or a UTC timestamp where its versions are timestamps. drizzle-kit
    and Prisma folders have generators of their own."""
    from datetime import UTC, datetime

    directory = settings.migrations_dir
    directory.mkdir(parents=True, exist_ok=True)
    foreign = [f for f in migrations.detect_formats(directory) if f != "native"]
    if foreign:
        generator = {"drizzle": "drizzle-kit generate", "prisma": "prisma migrate dev --create-only"}
        raise UsageError(
            f"{directory} is a {foreign[0]} folder: create its migrations with `{generator[foreign[0]]}`",
            file=str(directory),
        )
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug:
        raise UsageError(
            f"{name!r} has no letters or digits to name a file with; say what the migration does"
        )
    versions = [m.group(1) for p in directory.iterdir() if (m := migrations.NATIVE_NAME.match(p.name))]
    newest = max(versions, key=int, default=None)
    if newest is not None and len(newest) == 14:
        version = max(datetime.now(UTC).strftime("%Y%m%d%H%M%S"), str(int(newest) + 1))
    else:
        width = max((len(v) for v in versions), default=4)
        version = str(int(newest or 0) + 1).zfill(width)
    path = directory / f"{version}_{slug}.sql"
    path.write_text(
        f"-- {name}\n-- Runs in one transaction with its history row. Header directives, if any, go\n"
        "-- here (see the README): -- release-runner: lock-timeout=10s\n\n"
    )
    emit(Event.MIGRATION_CREATED, file=str(path), version=version)
    return path
