"""Applying pending migrations in order, one at a time: the time budget, retries on transient
errors, reconnecting and reading the history back when the connection was lost, and the advice
a failure ends with. Emits the `migration.*` events."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from release_runner.errors import MigrationFailed, UnreachableError
from release_runner.events import Event, emit
from release_runner.retry import with_retries
from release_runner.session import Session, require_url
from release_runner.settings import Settings

if TYPE_CHECKING:
    from release_runner.db import MigrationError, RunContext, Watcher
    from release_runner.preflight import Prepared


def apply_all(
    session: Session,
    prepared: list[Prepared],
    context: RunContext,
    deadline: float | None,
) -> None:
    """Apply in order on the session's connection (replaced by the session on a reconnect).
    `deadline` (a time.monotonic() value) ends the run: no migration starts after it, and one
    still running is cancelled."""
    from release_runner import db

    settings = session.settings

    def report(version: str, blockers: list[dict[str, Any]]) -> None:
        emit(Event.MIGRATION_WAITING, version=version, blockers=blockers)

    watcher = db.Watcher(require_url(settings), settings.application_name, deadline, report)
    try:
        for done, item in enumerate(prepared):
            if deadline is not None and time.monotonic() >= deadline:
                raise UnreachableError(
                    f"time budget of {settings.time_budget:g}s spent before {item.migration.label}; "
                    f"{done} applied, {len(prepared) - done} pending; deploy again "
                    "(or run `release-runner migrate`) to continue",
                )
            _apply_one(session, item, context, watcher)
    finally:
        watcher.close()


@dataclass
class _Attempts:
    """What the attempts at one migration share: how many were made, whether the history
    showed it already applied, and whether the last failure came before the file's statement
    was sent."""

    count: int = 0
    already_applied: bool = False
    statement_unsent: bool = False


def _apply_one(session: Session, item: Prepared, context: RunContext, watcher: Watcher) -> None:
    """One migration with its retries."""
    from release_runner import db

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
    )
    state = _Attempts()
    lock_timeout = item.lock_timeout(settings.lock_timeout)
    statement_timeout = item.statement_timeout(settings.statement_timeout)

    def attempt() -> None:
        state.count += 1
        if db.broken(session.conn):
            current = session.reconnect()
            row = db.history_row(current, settings.history_schema, migration.version)
            if row is not None and row.applied:
                # The COMMIT had landed before the connection died: never run it twice.
                emit(Event.MIGRATION_ALREADY_APPLIED, **facts, reason="found in history after reconnect")
                state.already_applied = True
                return
            if row is not None and state.statement_unsent:
                # A no-transaction migration whose `started` row committed, but whose statement
                # never left this process: nothing ran, so the row can go.
                db.delete_row(current, settings.history_schema, migration.version)
        with watcher.watching(migration.version, session.conn, lock_timeout):
            db.apply(session.conn, item, context, lock_timeout, statement_timeout)

    def retryable(error: BaseException) -> bool:
        # A no-transaction statement is never retried blindly: only when it was never sent.
        return (
            isinstance(error, db.MigrationError)
            and error.retry_reason is not None
            and (item.transactional or not error.statement_sent)
        )

    def on_retry(number: int, error: BaseException, delay: float) -> None:
        assert isinstance(error, db.MigrationError)
        state.statement_unsent = not error.statement_sent
        emit(
            Event.MIGRATION_RETRY,
            **facts,
            attempt=number,
            sqlstate=error.sqlstate,
            reason=error.retry_reason,
            error=error.message,
            delay_ms=round(delay * 1000),
            blockers=watcher.last_blockers or None,
        )

    started = time.monotonic()
    try:
        with_retries(attempt, retryable, on_retry, initial=0.5, maximum=10.0, attempts=settings.retries)
    except db.MigrationError as error:
        _fail(error, item, watcher, facts, state.count, settings)
    except db.IncompleteRun as error:
        emit(Event.MIGRATION_FAILED, **facts, error=str(error), attempt=state.count)
        raise MigrationFailed(f"{migration.label}: {error}; deploy again once the file is fixed") from None
    if not state.already_applied:
        emit(
            Event.MIGRATION_APPLIED,
            **facts,
            duration_ms=round((time.monotonic() - started) * 1000),
            attempt=state.count,
            transaction_mode=item.transaction_mode,
        )


def _fail(
    error: MigrationError,
    item: Prepared,
    watcher: Watcher,
    facts: dict[str, Any],
    attempts: int,
    settings: Settings,
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
            f"time budget of {settings.time_budget:g}s spent during {item.migration.label}.{undone}{advice}"
        )
    if error.connection_lost:
        advice += " The connection was lost; retries are exhausted."
    emit(Event.MIGRATION_FAILED, **fields)
    where = f"{error.file}:{error.line}:{error.column}" if error.line else error.file
    blockers = ""
    if watcher.last_blockers:
        names = ", ".join(f"pid {b['pid']} ({b['application_name'] or '?'})" for b in watcher.last_blockers)
        blockers = f" Blocked by {names}."
    raise MigrationFailed(
        f"{where}: {error.message} (SQLSTATE {error.sqlstate}).{blockers}{advice}",
        sqlstate=error.sqlstate,
    )


def _no_transaction_advice(item: Prepared) -> str:
    """What a human must do after a no-transaction migration failed: it cannot be rolled back,
    and the next run refuses until `repair` says what state the database is in."""
    version = item.migration.version
    advice = (
        " It ran without a transaction, so nothing was rolled back, and it is recorded as "
        "unfinished: check the database, then `release-runner repair --applied "
        f"{version} --reason '...'` or `repair --forget {version} --reason '...'`."
    )
    node = item.statements[0].node if item.statements else None
    if node and "IndexStmt" in node:
        name = node["IndexStmt"].get("idxname") or "<name>"
        advice += (
            f" A failed CREATE INDEX CONCURRENTLY leaves an INVALID index: DROP INDEX "
            f"CONCURRENTLY IF EXISTS {name}, then `release-runner repair --forget {version} "
            "--reason 'dropped the invalid index'` and deploy again."
        )
    return advice
