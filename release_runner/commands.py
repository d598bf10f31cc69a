"""The commands, as plain functions a library caller can use (like Alembic's `command.py`):
each takes Settings, reports through structlog, returns a value, and raises a ReleaseError
subclass on anything but success. The CLI is a thin shell over them, and each is a short
hand-over to the wing that does the work (run/ for anything that connects, core/ for the rest).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from release_runner.core import phases, schema
from release_runner.core import plan as plan_module
from release_runner.core.errors import BehindError, RefusedError, UsageError
from release_runner.core.events import Event
from release_runner.core.history import HistoryRow, RepairAction
from release_runner.core.report import PlanReport
from release_runner.core.scaffold import next_file
from release_runner.core.settings import Settings
from release_runner.core.targets import FleetOptions
from release_runner.run import data_checks, fleet_work, gate, release, session
from release_runner.run import repair as repairs
from release_runner.run import verify as verification
from release_runner.run.fleet import TargetEnding
from release_runner.run.log import emit
from release_runner.run.progress import Progress


def migrate(settings: Settings, run_id: str) -> None:
    """The deploy-time command: apply what this phase of the release applies, then verify."""
    release.run(settings, run_id)


def verify(settings: Settings) -> None:
    """Read-only: compare the live schema with the snapshot; raises DriftError on differences."""
    expected = verification.expected_schema(settings)
    with session.connected(settings) as conn:
        verification.verify_live(conn, settings, expected)


def ready(settings: Settings, verify: bool) -> dict[str, Any]:
    """Read-only, one connection, no lock: whether the database is in step with this image.
    Raises RefusedError (not in sync: an edited file, an unresolved migration), BehindError
    (migrations of this image not applied yet) or, with `verify`, DriftError."""
    found = gate.load(settings)
    expected = verification.expected_schema(settings) if verify else None
    with session.connected(settings) as conn:
        verdict = plan_module.readiness(gate.current_plan(conn, settings, found))
        if verdict.problems:
            raise RefusedError(
                "not in sync with this image: " + " | ".join(verdict.problems), problems=len(verdict.problems)
            )
        if verdict.behind:
            raise BehindError(
                f"{len(verdict.behind)} migration(s) of this image not applied yet "
                f"({', '.join(verdict.behind[:5])}{' ...' if len(verdict.behind) > 5 else ''}); "
                "the release phase applies them",
                behind=verdict.behind,
            )
        if verify:
            verification.verify_live(conn, settings, expected)
    return {"ahead": verdict.ahead} if verdict.ahead else {}


def history(settings: Settings) -> list[HistoryRow]:
    """Read-only: every history row, in the order they were written."""
    with session.connected(settings) as conn:
        rows = gate.history_rows(conn, settings)
    return sorted(rows, key=lambda row: (row.applied_at is None, row.applied_at, row.version))


def status(settings: Settings) -> plan_module.Plan:
    """Read-only: the state of every migration (never creates the history table)."""
    found = gate.load(settings)
    with session.connected(settings) as conn:
        return gate.current_plan(conn, settings, found)


def plan_report(settings: Settings) -> PlanReport:
    """Read-only: what would run, with preflight findings. Writes nothing, not even the history
    table."""
    found = gate.load(settings)
    with session.connected(settings) as conn:
        current = gate.current_plan(conn, settings, found)
        phase = phases.choose(current, settings.post_deploy, settings.release_id)
        prepared = gate.lint(phase.apply, settings, conn)
        found_data = data_checks.check(conn, prepared, settings, None, refuse=False)
    data = [
        {
            "file": f.probe.item.migration.label,
            "line": f.probe.statement.line,
            "rule": f.probe.rule,
            "table": f.probe.table,
            "rows": data_checks.rows(f.rows),
        }
        for f in found_data
    ]
    return PlanReport(current, prepared, settings, phase, data)


def snapshot(settings: Settings) -> Path:
    """Replay every migration into a scratch database and write the expected-schema file."""
    found = gate.load(settings)
    replayed = verification.replay(settings, found.migrations)
    path = settings.snapshot_file
    path.write_text(schema.dump(replayed))
    emit(Event.SNAPSHOT_WRITTEN, file=str(path), objects=sum(len(v) for v in replayed.objects.values()))
    return path


def check(settings: Settings) -> int:
    """CI gate: the directory reads, every migration applies from empty, and the committed
    snapshot matches what they produce. Returns how many migrations were replayed."""
    found = gate.load(settings)
    verification.check_replay(settings, found.migrations)
    return len(found.migrations)


def repair(settings: Settings, version: str, action: str, reason: str, run_id: str) -> None:
    """Resolve a record after a human fixed what it is about (see run/repair.py): `action` is
    `applied`, `forget` or `accept-checksum`."""
    try:
        verdict = RepairAction(action)
    except ValueError:
        raise UsageError(f"repair takes `applied`, `forget` or `accept-checksum`, not {action!r}") from None
    repairs.repair(settings, version, verdict, reason, run_id)


def baseline(settings: Settings, version: str | None, force: bool, run_id: str) -> int:
    """Adopt a database built without any history; returns how many migrations were recorded."""
    return repairs.baseline(settings, version, force, run_id)


def new(settings: Settings, name: str) -> Path:
    """Create the next native migration file, `<version>_<name>.sql` (see core/scaffold.py)."""
    directory = settings.migrations_dir
    directory.mkdir(parents=True, exist_ok=True)
    path, version, text = next_file(directory, name)
    path.write_text(text)
    emit(Event.MIGRATION_CREATED, file=str(path), version=version)
    return path


def fleet(
    settings: Settings,
    run_id: str,
    command: str,
    options: FleetOptions,
    progress: Progress,
    show: Callable[[list[TargetEnding]], None] | None = None,
) -> dict[str, Any]:
    """`migrate`, `status`, `plan` or `verify` on every target of a fleet (see run/fleet.py).
    `progress` must see the run's events (the CLI puts it in structlog's processors): each
    target's `target.finished` counts come from it. Returns the summary's facts; raises
    FleetError unless every target ended ok."""
    return fleet_work.run(settings, run_id, command, options, progress, show)
