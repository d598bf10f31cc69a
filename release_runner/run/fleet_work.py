"""What each command does on one target of a fleet, with what the whole fleet shares read
once: the files (parsed once, preflighted once) and the snapshot. `migrate` is a complete
release per target; `status`, `plan` and `verify` are read-only, as for one database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from release_runner.core import phases, schema
from release_runner.core.errors import FleetError, RefusedError, UsageError
from release_runner.core.migrations import MigrationSet
from release_runner.core.plan import Plan, State
from release_runner.core.settings import Settings
from release_runner.core.targets import FleetOptions, status_of
from release_runner.run import fleet, gate, release, session
from release_runner.run import verify as verification
from release_runner.run.fleet import TargetEnding, Work
from release_runner.run.progress import Progress

COMMANDS = ("migrate", "status", "plan", "verify")


def run(
    settings: Settings,
    run_id: str,
    command: str,
    options: FleetOptions,
    progress: Progress,
    show: Callable[[list[TargetEnding]], None] | None = None,
) -> dict[str, Any]:
    """`command` on every selected target; `show` sees every target's ending (a document's
    rows). Returns the facts of the fleet's summary; raises FleetError (the most serious exit
    code) unless every target ended ok."""
    if command not in COMMANDS:
        raise UsageError(f"{command} works on one database; it does not take --targets")
    found = gate.load(settings)
    gate.preflight_files(found)
    chosen = fleet.resolve(settings, options)
    if not chosen:
        raise UsageError("no target selected: the targets file or query is empty, or this shard has none")
    wants_snapshot = command == "verify" or (command == "migrate" and settings.verify)
    expected = verification.expected_schema(settings) if wants_snapshot else None
    endings = fleet.run(settings, options, chosen, _work(command, run_id, found, expected), progress)
    code, facts = fleet.summary(endings)
    for key in ("applied", "pending", "deferred"):
        facts[key] = sum(int(item.facts.get(key) or 0) for item in endings)
    if show is not None:
        show(endings)
    if code != 0:
        raise FleetError(
            f"{len(facts['not_ok'])} of {len(endings)} target(s) did not end ok: "
            + ", ".join(facts["not_ok"]),
            code,
            str(status_of(code)),
            facts,
        )
    return facts


def _work(command: str, run_id: str, found: MigrationSet, expected: schema.Snapshot | None) -> Work:
    if command == "migrate":
        return lambda settings: release.apply(settings, run_id, found, expected)
    if command == "verify":
        return lambda settings: _verify(settings, expected)
    if command == "plan":
        return lambda settings: _plan(settings, found)
    return lambda settings: _status(settings, found)


def _verify(settings: Settings, expected: schema.Snapshot | None) -> None:
    with session.connected(settings) as conn:
        verification.verify_live(conn, settings, expected)


def _status(settings: Settings, found: MigrationSet) -> dict[str, Any]:
    """One target's row of `status --targets`; refused (exit 5) where migrate would refuse."""
    with session.connected(settings) as conn:
        current = gate.current_plan(conn, settings, found)
    row = counts(current)
    if current.problems:
        error = RefusedError(
            f"migrate would refuse: {'; '.join(current.problems)}", problems=len(current.problems)
        )
        error.summary = row
        raise error
    return row


def _plan(settings: Settings, found: MigrationSet) -> dict[str, Any]:
    """What migrate would do on one target: its pending migrations and preflight's verdicts."""
    with session.connected(settings) as conn:
        current = gate.current_plan(conn, settings, found)
        phase = phases.choose(current, settings.post_deploy, settings.release_id)
        prepared = gate.lint(phase.apply, settings, conn)
    row = {**counts(current), "pending": len(phase.apply), "deferred": len(phase.defer)}
    errors = sum(len(item.errors) for item in prepared)
    if current.problems or errors:
        error = RefusedError(f"migrate would refuse: {len(current.problems) + errors} problem(s)")
        error.summary = row
        raise error
    return row


def counts(current: Plan) -> dict[str, Any]:
    """applied, pending, deferred and failed migrations of a plan, and the state in a word."""
    by_state = {state: sum(1 for e in current.entries if e.state is state) for state in State}
    failed = sum(
        n for state, n in by_state.items() if state not in (State.APPLIED, State.PENDING, State.DEFERRED)
    )
    state = "behind" if by_state[State.PENDING] else "at head"
    return {
        "applied": by_state[State.APPLIED],
        "pending": by_state[State.PENDING],
        "deferred": by_state[State.DEFERRED],
        "failed": failed,
        "state": "refused" if current.problems else state,
    }
