"""The only module that talks to psycopg: connecting with retries, the runner lock, the history
table, running one migration, and turning driver errors into facts (SQLSTATE, file position).
"""

from __future__ import annotations

import getpass
import hashlib
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.generators import execute as execute_generator
from psycopg.pq import ExecStatus, TransactionStatus

from release_runner.errors import UnreachableError, UsageError
from release_runner.log import redact
from release_runner.migrations import Migration
from release_runner.plan import HistoryRow
from release_runner.retry import with_retries
from release_runner.settings import pg_duration

if TYPE_CHECKING:
    from release_runner.preflight import Prepared

Connection = psycopg.Connection[Any]
# What a lost connection raises outside a migration; the runner maps it to "unreachable".
OperationalError = psycopg.OperationalError
# Any other refusal from the server outside a migration (privileges, a read-only server).
DatabaseError = psycopg.Error

# libpq messages of failures that heal by themselves; psycopg gives connection errors no SQLSTATE.
_TRANSIENT = (
    "connection refused",
    "could not connect",
    "timeout expired",
    "starting up",
    "shutting down",
    "not yet accepting connections",
    "recovery mode",
    "too many clients",
    "remaining connection slots",
    "could not translate host name",
    "temporary failure in name resolution",
    "name or service not known",
    "server closed the connection",
    "connection reset",
    "no route to host",
    "network is unreachable",
    "ssl syscall error",
    "eof detected",
    "terminating connection",
)
# ...and of those that never heal: retrying would only hide them until the budget runs out.
_PERMANENT = (
    "password authentication failed",
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "invalid connection option",
    "invalid sslmode",
    'missing "="',
    "invalid uri",
    "invalid integer value",
)
# Errors that end the session (08: connection exception; 57P0x: the server is shutting down or
# terminated the backend): the transaction is gone, and whether COMMIT landed must be read back.
_CONNECTION_LOST_CLASSES = ("08", "57P")
RETRYABLE_SQLSTATES = {
    "55P03": "lock_timeout",
    "40P01": "deadlock",
    "40001": "serialization_failure",
}


_QUERIES = Path(__file__).parent / "queries"


def query(name: str) -> str:
    """A query kept in `release_runner/queries/<name>.sql` (shipped as package data)."""
    return (_QUERIES / f"{name}.sql").read_text()


def is_transient(error: BaseException) -> bool:
    if not isinstance(error, psycopg.OperationalError):
        return False
    message = str(error).lower()
    if any(marker in message for marker in _PERMANENT):
        return False
    return any(marker in message for marker in _TRANSIENT)


def connect(
    url: str,
    budget: float,
    application_name: str,
    on_retry: Callable[[int, str, float], None],
) -> Connection:
    """Connect in autocommit mode, retrying transient failures with exponential backoff and
    jitter until `budget` seconds have passed. libpq's own connect_timeout is capped at the
    time left, so one hung attempt cannot eat the budget.

    Raises UnreachableError when the budget is spent, UsageError for failures that never heal
    (wrong password, missing database, malformed URL)."""
    deadline = time.monotonic() + budget

    def attempt() -> Connection:
        left = max(deadline - time.monotonic(), 1.0)
        return psycopg.connect(
            url,
            autocommit=True,
            prepare_threshold=None,
            application_name=application_name,
            connect_timeout=max(2, min(10, math.ceil(left))),
        )

    try:
        return with_retries(
            attempt,
            is_transient,
            lambda number, error, delay: on_retry(number, redact(str(error).strip()), delay),
            initial=0.25,
            maximum=5.0,
            budget=budget,
        )
    except psycopg.Error as error:
        message = redact(str(error).strip())
        if is_transient(error):
            raise UnreachableError(
                f"database unreachable within {budget:g}s: {message}; check the URL's host and "
                "port, or raise --connect-timeout",
                reason=message,
            ) from None
        raise UsageError(
            f"cannot connect: {message}; check the database URL (user, password, database name)",
            reason=message,
        ) from None


def probe(url: str, first: Connection, application_name: str) -> tuple[bool, bool]:
    """(transaction_pooler, read_only) for the server behind `url`, before the lock is taken.

    Pooler: two idle client connections that report the same backend pid share a server
    connection, and a pid that changes between two queries of one client means the same.
    Read-only: a hot standby, or a server set to read-only transactions."""
    with psycopg.connect(
        url, autocommit=True, prepare_threshold=None, application_name=application_name, connect_timeout=10
    ) as second:
        row = first.execute(
            "SELECT pg_backend_pid(), pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'"
        ).fetchone()
        assert row is not None
        pid_before, read_only = int(row[0]), bool(row[1])
        pid_second = _backend_pid(second)
        pid_after = _backend_pid(first)
    return pid_before == pid_second or pid_before != pid_after, read_only


def _backend_pid(conn: Connection) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    return int(row[0]) if row else -1


# ---------------------------------------------------------------------------- the runner lock


def lock_key(history_schema: str) -> int:
    """A stable signed 64-bit advisory-lock key derived from the history table's name."""
    digest = hashlib.sha256(f"release-runner:{history_schema}.history".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def try_lock(conn: Connection, key: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    return bool(row and row[0])


def lock_holders(conn: Connection, key: int) -> list[dict[str, Any]]:
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    params = {"classid": unsigned >> 32, "objid": unsigned & 0xFFFFFFFF}
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute(query("lock_holder"), params).fetchall()
    return [{**row, "backend_start": row["backend_start"].isoformat()} for row in rows]


def blockers(conn: Connection, pid: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(query("blockers"), {"pid": pid}).fetchall()


# ---------------------------------------------------------------------------- history


def history_exists(conn: Connection, schema: str) -> bool:
    row = conn.execute("SELECT to_regclass(quote_ident(%s) || '.history') IS NOT NULL", (schema,)).fetchone()
    return bool(row and row[0])


def ensure_history(conn: Connection, schema: str) -> None:
    """Create the history table if absent. Call with the runner lock held."""
    if not history_exists(conn, schema):
        conn.execute(sql.SQL(query("history_create")).format(schema=sql.Identifier(schema)))


def read_history(conn: Connection, schema: str) -> list[HistoryRow]:
    if not history_exists(conn, schema):
        return []
    statement = sql.SQL(
        "SELECT version, name, checksum, transaction_mode, status, applied_at, duration_ms,"
        " applied_by, run_id, error FROM {}.history"
    ).format(sql.Identifier(schema))
    return [HistoryRow(*row) for row in conn.execute(statement).fetchall()]


def history_row(conn: Connection, schema: str, version: str) -> HistoryRow | None:
    return next((r for r in read_history(conn, schema) if r.version == version), None)


def _os_user() -> str:
    """Who runs the runner; containers often run as a uid with no name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


@dataclass(frozen=True)
class RunContext:
    """What every history row of a run records besides the migration itself."""

    schema: str
    run_id: str
    fly: dict[str, str]
    applied_by: str = field(default_factory=lambda: f"{_os_user()}@{socket.gethostname()}")

    @cached_property
    def insert_prefix(self) -> str:
        """The part of a history INSERT that is the same for every row of the run, composed
        once: applying a thousand migrations should not quote the same values a thousand times."""
        constant = [self.applied_by, self.run_id, *(self.fly.get(k) for k in ("app", "machine", "image"))]
        return (
            sql.SQL(
                "INSERT INTO {}.history (applied_by, run_id, app, machine, image, version, name,"
                " checksum, transaction_mode, status, duration_ms) VALUES ({}, "
            )
            .format(sql.Identifier(self.schema), sql.SQL(", ").join(map(sql.Literal, constant)))
            .as_string(None)
        )


def _insert_history(context: RunContext, migration: Migration, mode: str, status: str) -> str:
    """The INSERT of a history row as literal SQL, so it can ride in the migration's own
    message. duration_ms is measured by the server from the transaction's start."""
    values = [migration.version, migration.name, migration.checksum, mode, status]
    quoted = ", ".join(sql.Literal(value).as_string(None) for value in values)
    return f"{context.insert_prefix}{quoted}, (extract(epoch FROM clock_timestamp() - now()) * 1000)::int)"


def record_rows(conn: Connection, context: RunContext, migrations: list[Migration], mode: str) -> None:
    """Insert history rows, in one transaction, for migrations this runner did not run
    (`baseline`, `imported`)."""
    with conn.transaction():
        for migration in migrations:
            conn.execute(_insert_history(context, migration, mode, "applied"))


_FOREIGN_COLUMNS = {
    "drizzle": "SELECT id, hash, created_at FROM {} ORDER BY created_at, id",
    "prisma": "SELECT migration_name, checksum, finished_at, rolled_back_at FROM {}"
    " ORDER BY started_at, migration_name",
}


def read_foreign_history(conn: Connection, source: str, table: str) -> list[dict[str, Any]] | None:
    """Rows of drizzle-kit's or Prisma's own history `table` ("schema.table", or a bare name
    found through search_path); None when there is no such table."""
    row = conn.execute("SELECT to_regclass(%s)::text", (table,)).fetchone()
    if not (row and row[0]):
        return None
    statement = sql.SQL(_FOREIGN_COLUMNS[source]).format(sql.SQL(row[0]))  # regclass text is quoted
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(statement).fetchall()


def set_status(conn: Connection, schema: str, version: str, status: str, error: str | None = None) -> None:
    conn.execute(
        sql.SQL(
            "UPDATE {}.history SET status = %s, error = %s, applied_at = clock_timestamp(),"
            " duration_ms = (extract(epoch FROM clock_timestamp() - applied_at) * 1000)::int"
            " WHERE version = %s"
        ).format(sql.Identifier(schema)),
        (status, error, version),
    )


def delete_row(conn: Connection, schema: str, version: str) -> None:
    conn.execute(
        sql.SQL("DELETE FROM {}.history WHERE version = %s").format(sql.Identifier(schema)),
        (version,),
    )


# ---------------------------------------------------------------------------- running migrations


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
        self.prepared = prepared
        self.sqlstate = error.sqlstate
        self.connection_lost = connection_lost
        self.statement_sent = statement_sent
        diag = error.diag
        self.message = redact((diag.message_primary or str(error)).strip())
        self.detail = diag.message_detail
        self.hint = diag.message_hint
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


def _run_message(conn: Connection, parts: list[str]) -> None:
    """Send `parts` as one simple-protocol message (one round trip) and raise the first error
    with the index of the part that failed and the error's position inside that part.

    psycopg's cursor would raise the error without saying which statement failed, so this
    drives its generator directly."""
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
    """Run one migration. Transactional: BEGIN, session reset, SET LOCAL timeouts, the
    statements, the history row and COMMIT in one round trip. No-transaction: a `started` row,
    the statement in autocommit, then the final status. Raises MigrationError."""
    lock = pg_duration(prepared.lock_timeout(lock_timeout))
    statement = pg_duration(prepared.statement_timeout(statement_timeout))
    texts = [s.text for s in prepared.statements]
    if prepared.transactional:
        # RESET ALL: a previous file's SET or set_config(..., false) must not leak into this one
        # (DISCARD ALL would also drop the runner's advisory lock).
        prefix = [
            "BEGIN",
            "RESET ALL",
            f"SET LOCAL lock_timeout = '{lock}'",
            f"SET LOCAL statement_timeout = '{statement}'",
            *_watch_client(conn, "SET LOCAL"),
        ]
        suffix = [_insert_history(context, prepared.migration, "transaction", "applied"), "COMMIT"]
        _guarded(conn, prepared, prefix + texts + suffix, len(prefix))
        return
    _guarded(
        conn,
        prepared,
        [
            "RESET ALL",
            f"SET lock_timeout = '{lock}'",
            f"SET statement_timeout = '{statement}'",
            *_watch_client(conn, "SET"),
            _insert_history(context, prepared.migration, "no-transaction", "started"),
        ],
        None,
    )
    try:
        _guarded(conn, prepared, texts, 0)
    except MigrationError as failure:
        if not failure.connection_lost:
            set_status(conn, context.schema, prepared.migration.version, "failed", failure.message)
        raise
    except KeyboardInterrupt:
        # psycopg has cancelled the statement; say so in the row, since what it left behind
        # (an INVALID index, say) needs a human before a rerun.
        if not conn.broken:
            set_status(conn, context.schema, prepared.migration.version, "failed", "interrupted")
        raise
    set_status(conn, context.schema, prepared.migration.version, "applied")


def _watch_client(conn: Connection, command: str) -> list[str]:
    """Have the server check every second that the runner is still there (PostgreSQL 14+), so
    a runner killed outright (SIGKILL, a vanished machine) does not leave its statement running
    and the runner lock held until that statement ends."""
    if conn.info.server_version < 140000:
        return []
    return [f"{command} client_connection_check_interval = '1s'"]


def _guarded(conn: Connection, prepared: Prepared, parts: list[str], first: int | None) -> None:
    """Run parts; translate errors, rolling back an aborted transaction. `first` is the index of
    the migration's first statement among `parts` (None: no statement of the file is there)."""
    try:
        _run_message(conn, parts)
    except _FailedPart as failed:
        lost = conn.broken or (failed.error.sqlstate or "").startswith(_CONNECTION_LOST_CLASSES)
        if not lost and conn.pgconn.transaction_status == TransactionStatus.INERROR:
            conn.execute("ROLLBACK")
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


# ---------------------------------------------------------------------------- the watcher


class Watcher:
    """A background thread that, while a migration runs, reports who blocks it (on its own
    connection) and cancels it, once, when the run's time budget is spent."""

    def __init__(
        self,
        url: str,
        application_name: str,
        deadline: float | None,
        report: Callable[[str, list[dict[str, Any]]], None],
    ) -> None:
        self._url = url
        self._application_name = application_name
        self.deadline = deadline
        self._report = report
        self._current: tuple[str, Connection, float] | None = None  # version, conn, report at
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conn: Connection | None = None
        self.budget_expired = False
        self._cancelled = False
        self.last_blockers: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._loop, name="release-runner-watcher", daemon=True)
        self._thread.start()

    @contextmanager
    def watching(self, version: str, conn: Connection, lock_timeout: float) -> Iterator[None]:
        """While the block runs, watch `conn`; blockers are looked for after a second, or
        halfway to the lock timeout when that is shorter, so a timeout can still name them."""
        with self._lock:
            self._current = (version, conn, time.monotonic() + min(1.0, lock_timeout / 2))
            self.last_blockers = []
            self._cancelled = False
        try:
            yield
        finally:
            with self._lock:
                self._current = None

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                current = self._current
            if current is None:
                continue
            version, conn, report_at = current
            if self.deadline is not None and time.monotonic() >= self.deadline:
                # Once: what runs after the cancelled statement (recording a no-transaction
                # migration as failed) must be left to finish.
                if not self._cancelled:
                    self._cancelled = self.budget_expired = True
                    self._cancel(conn)
                continue
            if time.monotonic() >= report_at:
                self._check_blockers(version, conn)
                self._stop.wait(0.75)

    def _cancel(self, conn: Connection) -> None:
        # If the connection is gone the main thread sees that itself.
        with suppress(psycopg.Error):
            conn.cancel_safe(timeout=5.0)

    def _check_blockers(self, version: str, conn: Connection) -> None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(
                    self._url,
                    autocommit=True,
                    prepare_threshold=None,
                    application_name=f"{self._application_name} (watcher)",
                    connect_timeout=5,
                )
            found = blockers(self._conn, conn.info.backend_pid)
        except psycopg.Error:
            return  # reporting is best effort; the migration's own outcome is what matters
        if found:
            for row in found:
                row["query"] = redact(row["query"] or "")
            self.last_blockers = found
            self._report(version, found)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        if self._conn is not None:
            self._conn.close()


# ---------------------------------------------------------------------------- scratch databases


def with_dbname(url: str, dbname: str) -> str:
    """The same connection settings, another database."""
    return psycopg.conninfo.make_conninfo(url, dbname=dbname)


def create_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def fetch_catalog(conn: Connection, history_schema: str) -> dict[str, Any]:
    """The live schema as raw rows (see queries/catalog.sql), in one round trip."""
    row = conn.execute(query("catalog"), {"history": history_schema}).fetchone()
    assert row is not None
    result: dict[str, Any] = row[0]
    return result


def table_sizes(conn: Connection, tables: list[str]) -> dict[str, dict[str, Any]]:
    """Estimated rows and on-disk size of existing tables, for preflight warnings."""
    rows = conn.execute(
        "SELECT t.name, c.reltuples::bigint, pg_total_relation_size(c.oid)"
        " FROM unnest(%s::text[]) AS t(name)"
        " JOIN pg_class c ON c.oid = to_regclass(CASE WHEN strpos(t.name, '.') > 0"
        "   THEN quote_ident(split_part(t.name, '.', 1)) || '.'"
        "        || quote_ident(split_part(t.name, '.', 2))"
        "   ELSE quote_ident(t.name) END)",
        (tables,),
    ).fetchall()
    return {name: {"estimated_rows": max(rows_, 0), "size_bytes": size} for name, rows_, size in rows}


def server_version(conn: Connection) -> str:
    return str(conn.info.parameter_status("server_version") or "?")
