"""Running one migration on the server: the message that carries it with its history row, the
session reset after it, and the translation of driver errors into facts (SQLSTATE, the failing
statement, its file position)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.generators import execute as execute_generator
from psycopg.generators import fetch_many
from psycopg.pq import ExecStatus, TransactionStatus

from release_runner.core import lock_ahead as lock_ahead_module
from release_runner.core import mask
from release_runner.core.history import Mode, Status
from release_runner.core.preflight import Prepared
from release_runner.core.redact import redact
from release_runner.core.settings import pg_duration
from release_runner.db.connection import OWN_ROLE, RUNNER_SESSION, Connection
from release_runner.db.history import GUARD_LOCK, GUARD_ROW, RunContext

# Errors that end the session (08: connection exception; 57P0x: the server is shutting down or
# terminated the backend): the transaction is gone, and whether COMMIT landed must be read back.
_CONNECTION_LOST_CLASSES = ("08", "57P")
RETRYABLE_SQLSTATES = {
    "55P03": "lock_timeout",
    "40P01": "deadlock",
    "40001": "serialization_failure",
}
# What a migration may leave in the session: settings (RESET ALL, then the runner's own session
# again: its login role, session_replication_role, keepalives), and what RESET ALL does not undo:
# temporary tables, sequence caches, prepared statements, LISTENs. Run after every migration so
# nothing it set reaches the next one or the runner's own statements. (`DISCARD ALL` would also
# release the runner's advisory lock.)
SESSION_RESET = (
    "RESET ALL",
    *RUNNER_SESSION,
    "DISCARD TEMP",
    "DISCARD SEQUENCES",
    "DEALLOCATE ALL",
    "UNLISTEN *",
)


class MigrationError(Exception):
    """A migration failed on the server, or the connection was lost while it ran.

    `retry_reason` is set where running it again is known to be safe after a rollback
    (lock timeout, deadlock, serialization failure); `connection_lost` where the outcome of
    the COMMIT is unknown and the history must be read first. `statement_sent` is False when
    the failure came before any of the file's statements left the client (a no-transaction
    migration's `started` row), which makes even a no-transaction migration safe to retry."""

    def __init__(
        self,
        prepared: Prepared,
        error: psycopg.Error,
        statement_index: int | None,
        position: int | None,
        connection_lost: bool = False,
        statement_sent: bool = True,
    ) -> None:
        self.sqlstate = error.sqlstate
        self.connection_lost = connection_lost
        self.statement_sent = statement_sent
        diag = error.diag
        statements = prepared.statements
        failing = (
            statements[statement_index]
            if statement_index is not None and 0 <= statement_index < len(statements)
            else None
        )
        values = mask.constants(failing.node) if failing else []
        primary, detail, hint = (
            (diag.message_primary or str(error)).strip(),
            diag.message_detail,
            diag.message_hint,
        )
        if mask.raised(diag.context) and not mask.values_shown():
            primary, detail, hint = mask.RAISED, detail and mask.RAISED, hint and mask.RAISED
        self.message = redact(mask.message(primary, values) or "")
        self.detail = mask.message(detail, values)
        self.hint = mask.message(hint, values)
        self.retry_reason = "connection_lost" if connection_lost else None
        if self.sqlstate in RETRYABLE_SQLSTATES:
            self.retry_reason = RETRYABLE_SQLSTATES[self.sqlstate]
        self.canceled = self.sqlstate == "57014"
        statements = prepared.statements
        self.file = str(prepared.migration.path)
        self.line: int | None = None
        self.column: int | None = None
        self.statement: str | None = None
        if statement_index is not None and 0 <= statement_index < len(statements):
            statement = statements[statement_index]
            self.statement = statement.head
            self.line, self.column = (
                statement.position(position) if position is not None else (statement.line, statement.column)
            )
        super().__init__(self.message)

    def fields(self) -> dict[str, Any]:
        return {
            "sqlstate": self.sqlstate,
            "error": self.message,
            "detail": self.detail,
            "hint": self.hint,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "statement": self.statement,
        }


class UnrecordedOutcome(Exception):
    """A no-transaction migration's statement finished (`status` says how) but the connection
    was lost before its row said so: the outcome is known and must be written after reconnecting.
    `failure` is the statement's own error when it failed."""

    def __init__(self, status: Status, error: str | None, failure: MigrationError | None) -> None:
        super().__init__(f"{status} but not recorded")
        self.status = status
        self.error = error
        self.failure = failure


class GroundLost(Exception):
    """The proof that rides after a migration failed (RunContext.guard): this session no longer
    holds the runner lock, or the migration's history row is not there. A transactional
    migration was rolled back with it; a no-transaction statement had run (`ran`: its status),
    and `recorded` says whether its row says so."""

    def __init__(self, message: str, lock: bool, ran: Status | None = None, recorded: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.lock = lock
        """The lock is what was lost (else the row)."""
        self.ran = ran
        self.recorded = recorded


def _ground_lost(error: psycopg.Error, context: RunContext) -> GroundLost | None:
    """What a failed guard says, in words; None when the error is not the guard's."""
    text = error.diag.message_primary or ""
    if GUARD_LOCK in text:
        return GroundLost(
            "the runner lock was released while it ran (pg_advisory_unlock_all(), DISCARD ALL, or a "
            "function that calls them), so another runner may be applying now; this run stops. "
            "Remove that from the migration",
            lock=True,
        )
    if GUARD_ROW in text:
        table = context.history.table("history").as_string(None)
        return GroundLost(
            f"its history row was not written to {table} (a rule or trigger there keeps rows out); "
            "drop that rule or trigger: the runner's own schema is not for migrations",
            lock=False,
        )
    return None


class IncompleteRun(Exception):
    """The server did not run every part of a message, and said no error: proof that what was
    sent is not what was meant (a NUL byte cut the text short, say). Reported as applied only
    when the history row shows that the message's COMMIT landed (run/executor.py)."""


def _run_message(conn: Connection, parts: list[str], in_transaction_after: bool = False) -> None:
    """Send `parts` as one simple-protocol message (one round trip) and raise the first error
    with the index of the part that failed and the error's position inside that part.

    psycopg's cursor would raise the error without saying which statement failed, so this
    drives its generator directly. After a success it checks that the server answered every
    part and that the session is where the message leaves it (outside a transaction, unless
    `in_transaction_after`): the proof that each part, COMMIT included, ran."""
    text = "\n;\n".join(parts)
    conn.pgconn.send_query(text.encode(conn.info.encoding))
    results = conn.wait(execute_generator(conn.pgconn))
    for index, result in enumerate(results):
        if result.status == ExecStatus.FATAL_ERROR:
            error = pg_errors.error_from_result(result, encoding=conn.info.encoding)
            position = error.diag.statement_position
            offset = None
            if position is not None:
                start = sum(len(part) + 3 for part in parts[:index])
                offset = int(position) - 1 - start
            raise _FailedPart(error, index, offset)
    idle = conn.pgconn.transaction_status == TransactionStatus.IDLE
    if len(results) != len(parts) or idle == in_transaction_after:
        if not idle:
            conn.execute("ROLLBACK")
        raise IncompleteRun(
            f"the server answered {len(results)} of {len(parts)} parts and the session is "
            f"{'idle' if idle else 'inside a transaction'}"
        )


class _FailedPart(Exception):
    def __init__(self, error: psycopg.Error, index: int, offset: int | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.index = index
        self.offset = offset


def apply(
    conn: Connection,
    prepared: Prepared,
    context: RunContext,
    lock_timeout: float,
    statement_timeout: float,
) -> None:
    """Run one migration, then reset the session. Transactional: BEGIN, SET LOCAL timeouts, the
    statements, the history row, COMMIT and the reset in one round trip; a migration that
    touches existing tables first takes their locks in one more (lock_ahead.py). No-transaction: a
    `started` row, the statement in autocommit, then the final status with the reset. Raises
    MigrationError, or IncompleteRun when the server did not run all of it."""
    if prepared.transactional:
        _apply_in_transaction(conn, prepared, context, lock_timeout, statement_timeout)
    else:
        _apply_alone(conn, prepared, context, lock_timeout, statement_timeout)


def _apply_in_transaction(
    conn: Connection, prepared: Prepared, context: RunContext, lock_timeout: float, statement_timeout: float
) -> None:
    """Lock-ahead (if any) in one message; then the statements, the history row, the guard,
    COMMIT and the session reset in the next."""
    lock, statement = pg_duration(lock_timeout), pg_duration(statement_timeout)
    texts = [s.text for s in prepared.statements]
    lock_ahead = lock_ahead_module.block(prepared.locks_ahead, round(lock_timeout * 1000))
    prefix = [
        "BEGIN",
        f"SET LOCAL lock_timeout = '{lock}'",
        f"SET LOCAL statement_timeout = '{statement}'",
        *_watch_client(conn, "SET LOCAL"),
    ]
    if lock_ahead:
        # A message of its own: pg_stat_activity then shows the file's statements, not this.
        _guarded(conn, prepared, [*prefix, lock_ahead], None, in_transaction_after=True)
        prefix = []
    # The history row is written as the runner's own login role, whatever role the file
    # switched to (RESET ROLE would go back to the role's default `role` setting instead).
    suffix = [
        *OWN_ROLE,
        context.insert(prepared.migration, Mode.TRANSACTION, Status.APPLIED),
        *_undefer(prepared, context),
        context.guard(prepared.migration, Status.APPLIED),
        "COMMIT",
        *SESSION_RESET,
    ]
    _guarded(conn, prepared, prefix + texts + suffix, len(prefix), context=context)


def _apply_alone(
    conn: Connection, prepared: Prepared, context: RunContext, lock_timeout: float, statement_timeout: float
) -> None:
    """A no-transaction migration: its `started` row, the statement in autocommit, then the
    final status with the session reset."""
    lock, statement = pg_duration(lock_timeout), pg_duration(statement_timeout)
    _guarded(
        conn,
        prepared,
        [
            f"SET lock_timeout = '{lock}'",
            f"SET statement_timeout = '{statement}'",
            *_watch_client(conn, "SET"),
            context.insert(prepared.migration, Mode.NO_TRANSACTION, Status.STARTED),
            *_undefer(prepared, context),
        ],
        None,
    )
    # An interruption (KeyboardInterrupt) passes through: what the statement did is for the
    # caller to find out from the catalog, not to guess.
    try:
        _guarded(conn, prepared, [s.text for s in prepared.statements], 0)
    except MigrationError as failure:
        if not failure.connection_lost:
            _record(conn, prepared, context, Status.FAILED, failure.message, failure)
        raise
    _record(conn, prepared, context, Status.APPLIED, None, None)


def _undefer(prepared: Prepared, context: RunContext) -> list[str]:
    """A deferred migration leaves the deferred table as its history row is written (whatever
    its file says now: the directive may have been removed since). Others have no row there."""
    return [context.undefer(prepared.migration)] if prepared.migration.version in context.deferred else []


def _record(
    conn: Connection,
    prepared: Prepared,
    context: RunContext,
    status: Status,
    error: str | None,
    failure: MigrationError | None,
) -> None:
    """Reset the session (its SET timeouts included), then record the outcome of the statement;
    UnrecordedOutcome when the connection is lost on the way."""
    update = context.history.status_update(prepared.migration.version, status, error)
    try:
        _guarded(
            conn,
            prepared,
            [*SESSION_RESET, update, context.guard(prepared.migration, status)],
            None,
            context=context,
        )
    except MigrationError as lost:
        if not lost.connection_lost:
            raise
        raise UnrecordedOutcome(status, error, failure) from None
    except GroundLost as ground:
        # The statement ran in autocommit and what it did stays; the guard's failure rolled the
        # row's update back with it. With only the lock gone, the row can still say the truth.
        if ground.lock:
            _guarded(conn, prepared, [update], None)
        raise GroundLost(ground.message, ground.lock, status, recorded=ground.lock) from None


def drain(conn: Connection) -> None:
    """Read what the server still has to send for a message whose reading a signal cut short,
    so that the connection answers again and its transaction state is the server's."""
    if conn.pgconn.transaction_status == TransactionStatus.ACTIVE:
        conn.wait(fetch_many(conn.pgconn))


def _watch_client(conn: Connection, command: str) -> list[str]:
    """Have the server check every second that the runner is still there (PostgreSQL 14+), so
    a runner killed outright (SIGKILL, a vanished machine) does not leave its statement running
    and the runner lock held until that statement ends."""
    if conn.info.server_version < 140000:
        return []
    return [f"{command} client_connection_check_interval = '1s'"]


def _guarded(
    conn: Connection,
    prepared: Prepared,
    parts: list[str],
    first: int | None,
    in_transaction_after: bool = False,
    context: RunContext | None = None,
) -> None:
    """Run parts; translate errors, rolling back an aborted transaction. `first` is the index of
    the migration's first statement among `parts` (None: no statement of the file is there);
    with `context`, parts include its guard, whose failure is GroundLost."""
    try:
        _run_message(conn, parts, in_transaction_after)
    except _FailedPart as failed:
        lost = conn.broken or (failed.error.sqlstate or "").startswith(_CONNECTION_LOST_CLASSES)
        if not lost and conn.pgconn.transaction_status == TransactionStatus.INERROR:
            conn.execute("ROLLBACK")
        ground = _ground_lost(failed.error, context) if context is not None else None
        if ground is not None:
            raise ground from None
        index = None if first is None else failed.index - first
        raise MigrationError(
            prepared,
            failed.error,
            index,
            failed.offset,
            connection_lost=lost,
            statement_sent=first is not None,
        ) from None
    except psycopg.OperationalError as error:
        if conn.closed or conn.broken:
            raise MigrationError(
                prepared, error, None, None, connection_lost=True, statement_sent=first is not None
            ) from None
        raise
