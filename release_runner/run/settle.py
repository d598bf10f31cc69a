"""What a migration whose end the runner did not see left behind, read from the server: a
no-transaction migration judged from the catalog (and its row written accordingly), what an
interrupted migration left for the summary to say, and how a failure is reported with the
advice it ends with."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from release_runner.core import outcome as outcome_module
from release_runner.core.errors import MigrationFailed, TimeBudgetSpent
from release_runner.core.events import Event
from release_runner.core.history import Status
from release_runner.core.migrations import Migration
from release_runner.core.outcome import Outcome
from release_runner.core.preflight import Prepared
from release_runner.core.statements import Statement
from release_runner.db import catalog, execute
from release_runner.db.connection import Connection, broken, in_transaction
from release_runner.db.execute import MigrationError
from release_runner.db.history import HistoryStore
from release_runner.db.watcher import Watcher
from release_runner.run.log import emit
from release_runner.run.session import Session


def settle(
    conn: Connection, history: HistoryStore, migration: Migration, statements: list[Statement], why: str
) -> Outcome:
    """A no-transaction migration whose end was not seen: judge it from the catalog, write what
    the catalog proves into its row (or remove the row when it never took effect), and say so
    in `migration.reconciled`. An unknown outcome leaves the row as it is."""
    version = migration.version
    judged = outcome_module.judged_index(statements)
    verdict = (
        Outcome.UNKNOWN
        if judged is None
        else outcome_module.judge(judged[0], catalog.index_state(conn, judged[1]))
    )
    if verdict is Outcome.APPLIED:
        history.record_outcome(conn, version, Status.APPLIED, None)
    elif verdict is Outcome.NOT_APPLIED:
        history.delete_row(conn, version)
    elif verdict is Outcome.INVALID:
        history.record_outcome(conn, version, Status.FAILED, "left an INVALID index")
    emit(
        Event.MIGRATION_RECONCILED,
        version=version,
        file=migration.label,
        outcome=str(verdict),
        reason=f"{why}; {outcome_module.REASONS[verdict]}",
    )
    return verdict


def after_interrupt(session: Session, item: Prepared, reported: bool, applied: Callable[[], None]) -> str:
    """What the interrupted migration left, read from the server, so the summary says exactly
    that; a migration that committed before the signal is reported applied."""
    label = item.migration.label
    conn = session.conn
    if reported:
        return f"{label} had been applied; no migration was left half-done"
    if not broken(conn):
        execute.drain(conn)  # the signal may have come between sending the message and reading it
    if broken(conn):
        return (
            f"{label} was running and the connection is gone: it was rolled back unless it had "
            "committed; `release-runner status` shows which"
        )
    if item.transactional:
        if in_transaction(conn):
            return f"{label} was cancelled and rolled back"
        row = session.history.row(conn, item.migration.version)
        if row is not None and row.applied:
            applied()
            return f"{label} had committed before the signal and is counted as applied"
        return f"{label} was cancelled before it committed, and rolled back"
    verdict = settle(conn, session.history, item.migration, item.statements, "interrupted while it ran")
    if verdict is Outcome.APPLIED:
        applied()
        return f"{label} had finished before the signal (the catalog shows it) and is recorded applied"
    if verdict is Outcome.NOT_APPLIED:
        return f"{label} was cancelled before it took effect; the next deploy runs it"
    if verdict is Outcome.INVALID:
        return (
            f"{label} was cancelled and left an INVALID index; recorded failed.{no_transaction_advice(item)}"
        )
    session.history.record_outcome(conn, item.migration.version, Status.FAILED, "interrupted")
    return (
        f"{label} ran without a transaction and was cancelled; recorded failed.{no_transaction_advice(item)}"
    )


def fail(
    error: MigrationError,
    item: Prepared,
    watcher: Watcher,
    facts: dict[str, str],
    attempts: int,
    time_budget: float | None,
) -> NoReturn:
    """Report a migration that failed for good, and raise what ends the run."""
    fields = {**facts, **error.fields(), "attempt": attempts}
    if watcher.last_blockers:
        fields["blockers"] = watcher.last_blockers
    advice = no_transaction_advice(item) if not item.transactional else ""
    if error.canceled and watcher.budget_expired:
        emit(Event.MIGRATION_FAILED, **fields, reason="time budget spent; cancelled")
        undone = (
            " It was cancelled."
            if advice
            else " It was cancelled and rolled back; deploy again to continue, unless it alone takes "
            "longer than the budget: then raise --time-budget, or it is cancelled again"
        )
        raise TimeBudgetSpent(
            f"time budget of {time_budget:g}s spent during {item.migration.label}.{undone}{advice}"
        )
    if error.connection_lost:
        advice += " The connection was lost; retries are exhausted."
    emit(Event.MIGRATION_FAILED, **fields)
    where = f"{error.file}:{error.line}:{error.column}" if error.line else error.file
    blockers = ""
    if watcher.last_blockers:
        names = ", ".join(f"pid {b['pid']} ({b['application_name'] or '?'})" for b in watcher.last_blockers)
        blockers = f" Blocked by {names}."
    failure = MigrationFailed(
        f"{where}: {error.message} (SQLSTATE {error.sqlstate}).{blockers}{advice}",
        sqlstate=error.sqlstate,
    )
    failure.cause = f"{where}: {error.message} (SQLSTATE {error.sqlstate})."
    raise failure


def no_transaction_advice(item: Prepared) -> str:
    return " " + outcome_module.advice(item.migration.version, item.statements)
