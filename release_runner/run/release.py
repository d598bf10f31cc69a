"""A release: the deploy-time run of `migrate`. Read the files, connect and lock, validate the
history, choose the phase's migrations (deferring post-deploy ones), preflight, apply, verify."""

from __future__ import annotations

import time
from dataclasses import replace

from release_runner.core import phases, schema
from release_runner.core import plan as plan_module
from release_runner.core.errors import ReleaseError, UnreachableError
from release_runner.core.events import Event
from release_runner.core.migrations import MigrationSet
from release_runner.core.settings import Settings, fly_context
from release_runner.db.connection import Connection, DatabaseError
from release_runner.db.history import RunContext
from release_runner.run import data_checks, session
from release_runner.run import gate as refusals
from release_runner.run import verify as verification
from release_runner.run.log import emit


def run(settings: Settings, run_id: str) -> None:
    """Apply what this phase of the release applies, within the time budget."""
    found = refusals.load(settings)
    expected = verification.expected_schema(settings) if settings.verify else None
    apply(settings, run_id, found, expected)


def apply(settings: Settings, run_id: str, found: MigrationSet, expected: schema.Snapshot | None) -> None:
    """run() with the files read and the snapshot loaded already (a fleet reads them once)."""
    deadline = None if settings.time_budget is None else time.monotonic() + settings.time_budget
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
        context = RunContext(locked.history, run_id, fly_context(), lock=locked.lock)

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
        if phase.apply and current.fresh:
            locked.read(lambda conn: refusals.refuse_if_built_without_history(conn, phase.apply, settings))
        prepared = (
            locked.read(lambda conn: refusals.preflight(phase.apply, settings, conn)) if phase.apply else []
        )
        locked.read(lambda conn: data_checks.check(conn, prepared, settings, deadline))
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
