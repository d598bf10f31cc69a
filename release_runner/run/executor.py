"""Applying pending migrations in order, one at a time: the time budget, retries on transient
errors, reconnecting and reading the history back when the connection was lost, settling a
no-transaction migration whose end was not seen, and the advice a failure ends with. Emits the
`migration.*` events, and says exactly what an interruption left behind."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, NoReturn

from tenacity import RetryCallState

from release_runner.core import outcome as outcome_module
from release_runner.core.errors import Interrupted, MigrationFailed, UnreachableError
from release_runner.core.events import Event
from release_runner.core.history import HistoryRow, Status
from release_runner.core.migrations import Migration
from release_runner.core.outcome import Outcome
from release_runner.core.preflight import Prepared
from release_runner.core.statements import Statement
from release_runner.db import catalog, execute
from release_runner.db.connection import Connection, DatabaseError, broken, in_transaction
from release_runner.db.execute import MigrationError
from release_runner.db.history import HistoryStore, RunContext
from release_runner.db.watcher import Watcher
from release_runner.run import interrupts, retrying
from release_runner.run.log import emit
from release_runner.run.retrying import Deadline
from release_runner.run.session import Session, require_url


def apply_all(
    session: Session,
    prepared: list[Prepared],
    context: RunContext,
    deadline: float | None,
) -> None:
    """Apply in order on the session's connection (replaced by the session on a reconnect).
    `deadline` (a time.monotonic() value) ends the run: no migration starts after it, and one
    still running is cancelled. After a reconnect the history is read again, since another
    runner may have taken the lock meanwhile and applied what was pending."""
    settings = session.settings

    def report(version: str, blockers: list[dict[str, Any]]) -> None:
        emit(Event.MIGRATION_WAITING, version=version, blockers=blockers)

    watcher = Watcher(require_url(settings), settings.application_name, deadline, report)
    seen_reconnects = session.reconnects
    applied: dict[str, HistoryRow] = {}
    try:
        for done, item in enumerate(prepared):
            if session.reconnects != seen_reconnects:
                seen_reconnects = session.reconnects
                applied = {r.version: r for r in session.history.read(session.conn) if r.applied}
            row = applied.get(item.migration.version)
            if row is not None:
                _already_applied(item, context, row.run_id)
                continue
            if deadline is not None and time.monotonic() >= deadline:
                raise UnreachableError(
                    f"time budget of {settings.time_budget:g}s spent before {item.migration.label}; "
                    f"{done} applied, {len(prepared) - done} pending; deploy again "
                    "(or run `release-runner migrate`) to continue",
                )
            _apply_one(session, item, context, watcher, deadline)
    finally:
        watcher.close()


def _already_applied(item: Prepared, context: RunContext, run_id: str | None) -> None:
    ours = run_id == context.run_id
    emit(
        Event.MIGRATION_ALREADY_APPLIED,
        version=item.migration.version,
        name=item.migration.name,
        file=item.migration.label,
        ours=ours,
        reason="its COMMIT had landed before the connection was lost"
        if ours
        else f"another runner (run_id {run_id}) applied it while this one was reconnecting",
    )


@dataclass(eq=False, repr=False)
class _Attempts:
    """What the attempts at one migration share: how many were made, whether its outcome was
    already reported, and whether the last failure came before the file's statement was sent."""

    count: int = 0
    reported: bool = False
    statement_unsent: bool = False


def _apply_one(
    session: Session, item: Prepared, context: RunContext, watcher: Watcher, deadline: float | None
) -> None:
    """One migration with its retries."""
    settings = session.settings
    migration = item.migration
    facts = {"version": migration.version, "name": migration.name, "file": migration.label}
    if item.unwrapped:
        emit(
            Event.MIGRATION_UNWRAPPED,
            **facts,
            reason="dropped the file's own BEGIN/COMMIT; the runner's transaction covers the whole file",
        )
    emit(
        Event.MIGRATION_STARTED,
        **facts,
        transaction_mode=item.transaction_mode,
        **({"automatic": True} if item.automatic_no_transaction else {}),
        statements=len(item.statements),
        **({"locks_ahead": [lock.describe() for lock in item.locks_ahead]} if item.locks_ahead else {}),
    )
    state = _Attempts()
    lock_timeout = item.lock_timeout(settings.lock_timeout)
    statement_timeout = item.statement_timeout(settings.statement_timeout)
    started = time.monotonic()

    def applied() -> None:
        # Reported and marked as one step: a signal between the two would leave the summary
        # one short (the randomized fault test found that window).
        with interrupts.deferred():
            if not state.reported:
                emit(
                    Event.MIGRATION_APPLIED,
                    **facts,
                    duration_ms=round((time.monotonic() - started) * 1000),
                    attempt=state.count,
                    transaction_mode=item.transaction_mode,
                )
                state.reported = True

    def attempt() -> None:
        state.count += 1
        if broken(session.conn):
            current = session.reconnect()
            row = session.history.row(current, migration.version)
            if row is not None and row.applied:
                # Applied already (our COMMIT landed, or another runner did it): never twice.
                with interrupts.deferred():
                    _already_applied(item, context, row.run_id)
                    state.reported = True
                return
            if row is not None and state.statement_unsent:
                # A no-transaction migration whose `started` row committed, but whose statement
                # never left this process: nothing ran, so the row can go.
                session.history.delete_row(current, migration.version)
        try:
            with watcher.watching(migration.version, session.conn, lock_timeout):
                execute.apply(session.conn, item, context, lock_timeout, statement_timeout)
        except execute.UnrecordedOutcome as unrecorded:
            # The statement's outcome is known; only writing it down was cut short.
            session.history.record_outcome(
                session.reconnect(),
                migration.version,
                unrecorded.status,
                unrecorded.error,
            )
            if unrecorded.failure is not None:
                raise unrecorded.failure from None
        except MigrationError as error:
            if item.transactional or not (error.connection_lost and error.statement_sent):
                raise
            # The connection died while the statement ran: ask the catalog what it did.
            if (
                _settle(session, item, session.reconnect(), "the connection was lost while it ran")
                is Outcome.APPLIED
            ):
                return
            raise
        applied()

    def retryable(error: BaseException) -> bool:
        # A no-transaction statement is never retried blindly: only when it was never sent,
        # or when the catalog proved it never took effect (its row is gone then).
        return (
            isinstance(error, MigrationError)
            and error.retry_reason is not None
            and (item.transactional or not error.statement_sent or _forgotten(session, item))
        )

    def before_sleep(retry_state: RetryCallState) -> None:
        error = retrying.failure(retry_state)
        assert isinstance(error, MigrationError)
        state.statement_unsent = not error.statement_sent
        emit(
            Event.MIGRATION_RETRY,
            **facts,
            attempt=retry_state.attempt_number,
            sqlstate=error.sqlstate,
            reason=error.retry_reason,
            error=error.message,
            delay_ms=round(retrying.delay(retry_state) * 1000),
            blockers=watcher.last_blockers or None,
        )

    try:
        retrying.policy(
            retryable,
            before_sleep,
            wait=retrying.equal_jitter(0.5, 10.0),
            deadline=Deadline(deadline),
            attempts=settings.retries,
        )(attempt)
        applied()
    except MigrationError as error:
        _fail(error, item, watcher, facts, state.count, settings.time_budget)
    except execute.IncompleteRun as error:
        emit(Event.MIGRATION_FAILED, **facts, error=str(error), attempt=state.count)
        raise MigrationFailed(f"{migration.label}: {error}; deploy again once the file is fixed") from None
    except KeyboardInterrupt as interrupted:
        if isinstance(interrupted, Interrupted):
            try:
                interrupted.outcome = _after_interrupt(session, item, state.reported, applied)
            except DatabaseError:
                # The signal came between sending a statement and reading its result: the
                # connection cannot answer now. Say so rather than crash with its error.
                interrupted.outcome = (
                    f"{migration.label} was running and what it left could not be read back; "
                    "`release-runner status` shows what committed"
                )
        raise


def _forgotten(session: Session, item: Prepared) -> bool:
    """True when settling removed the row of a no-transaction migration (it never took effect)."""
    return session.history.row(session.conn, item.migration.version) is None


def _settle(session: Session, item: Prepared, conn: Connection, why: str) -> Outcome:
    return settle(conn, session.history, item.migration, item.statements, why)


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


def _after_interrupt(session: Session, item: Prepared, reported: bool, applied: Any) -> str:
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
    verdict = _settle(session, item, conn, "interrupted while it ran")
    if verdict is Outcome.APPLIED:
        applied()
        return f"{label} had finished before the signal (the catalog shows it) and is recorded applied"
    if verdict is Outcome.NOT_APPLIED:
        return f"{label} was cancelled before it took effect; the next deploy runs it"
    if verdict is Outcome.INVALID:
        return (
            f"{label} was cancelled and left an INVALID index; recorded failed.{_no_transaction_advice(item)}"
        )
    session.history.record_outcome(conn, item.migration.version, Status.FAILED, "interrupted")
    return (
        f"{label} ran without a transaction and was cancelled; recorded failed.{_no_transaction_advice(item)}"
    )


def _fail(
    error: MigrationError,
    item: Prepared,
    watcher: Watcher,
    facts: dict[str, Any],
    attempts: int,
    time_budget: float | None,
) -> NoReturn:
    """Report a migration that failed for good, and raise what ends the run."""
    fields = {**facts, **error.fields(), "attempt": attempts}
    if watcher.last_blockers:
        fields["blockers"] = watcher.last_blockers
    advice = _no_transaction_advice(item) if not item.transactional else ""
    if error.canceled and watcher.budget_expired:
        emit(Event.MIGRATION_FAILED, **fields, reason="time budget spent; cancelled")
        undone = (
            " It was cancelled." if advice else " It was cancelled and rolled back; deploy again to continue."
        )
        raise UnreachableError(
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


def _no_transaction_advice(item: Prepared) -> str:
    return " " + outcome_module.advice(item.migration.version, item.statements)
