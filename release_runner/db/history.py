"""The history in the database: the HistoryStore reads and writes the runner's history and
deferred tables in one schema (Atlas's RevisionReadWriter, dbmate's migrations table), the
RunContext composes the rows a run writes, and the history that drizzle-kit or Prisma kept
before the runner took over is read here too."""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import psycopg
from psycopg import sql

from release_runner.core.history import DeferredRow, HistoryRow, Mode, Status
from release_runner.core.migrations import Migration
from release_runner.db.connection import Connection, query
from release_runner.db.lock import RunnerLock


@dataclass(frozen=True, eq=False, repr=False)
class HistoryStore:
    """The runner's history and deferred tables in `schema`. Every method takes the connection
    to use: the session owns it, and replaces it after a reconnect."""

    schema: str

    def table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))

    def exists(self, conn: Connection, table: str = "history") -> bool:
        row = conn.execute(
            "SELECT to_regclass(quote_ident(%s) || '.' || quote_ident(%s)) IS NOT NULL", (self.schema, table)
        ).fetchone()
        return bool(row and row[0])

    def ensure(self, conn: Connection) -> None:
        """Create the history table and the deferred table if absent (a database from before
        post-deploy migrations has only the first). Call with the runner lock held."""
        if not (self.exists(conn) and self.exists(conn, "deferred")):
            conn.execute(sql.SQL(query("history_create")).format(schema=sql.Identifier(self.schema)))

    def read(self, conn: Connection, version: str | None = None) -> list[HistoryRow]:
        """Every row, or the row of one `version`; none when the table does not exist yet."""
        if not self.exists(conn):
            return []
        statement = sql.SQL(
            # applied_at as epoch seconds: psycopg cannot parse a timestamptz rendered in a
            # DateStyle such as German or SQL, which a role or PGOPTIONS may set.
            "SELECT version, name, checksum, transaction_mode, status,"
            " pg_catalog.date_part('epoch', applied_at), duration_ms,"
            " applied_by, run_id, error, image FROM {}"
        ).format(self.table("history"))
        if version is not None:
            statement = sql.SQL("{} WHERE version = %s").format(statement)
        rows = conn.execute(statement, (version,) if version is not None else None).fetchall()
        modes, statuses = (
            Mode._value2member_map_,
            Status._value2member_map_,
        )  # a lookup, not an enum call per row
        return [
            HistoryRow(
                v,
                n,
                c,
                modes[mode],  # type: ignore[arg-type]
                statuses[status],  # type: ignore[arg-type]
                datetime.fromtimestamp(epoch, UTC) if epoch is not None else None,
                *rest,
            )
            for v, n, c, mode, status, epoch, *rest in rows
        ]

    def row(self, conn: Connection, version: str) -> HistoryRow | None:
        rows = self.read(conn, version)
        return rows[0] if rows else None

    def read_deferred(self, conn: Connection) -> dict[str, DeferredRow]:
        """The deferred post-deploy migrations by version; none when the table does not exist."""
        if not self.exists(conn, "deferred"):
            return {}
        rows = conn.execute(
            sql.SQL(
                "SELECT version, name, release_id, pg_catalog.date_part('epoch', deferred_at), run_id FROM {}"
            ).format(self.table("deferred"))
        ).fetchall()
        return {
            version: DeferredRow(version, name, release, datetime.fromtimestamp(epoch, UTC), run_id)
            for version, name, release, epoch, run_id in rows
        }

    def defer(
        self, conn: Connection, run_id: str, migrations: list[Migration], release_id: str | None
    ) -> None:
        """Record post-deploy migrations as deferred; one deferred already keeps its first release."""
        insert = sql.SQL(
            "INSERT INTO {} (version, name, release_id, run_id) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (version) DO NOTHING"
        ).format(self.table("deferred"))
        with conn.transaction():
            for migration in migrations:
                conn.execute(insert, (migration.version, migration.name, release_id, run_id))

    def status_update(self, version: str, status: Status, error: str | None = None) -> str:
        """The UPDATE that ends a no-transaction migration's row, as literal SQL so it can share
        a message with the session reset. duration_ms runs from the `started` row's write."""
        return (
            sql.SQL(
                "UPDATE {} SET status = {}, error = {}, duration_ms = LEAST("
                "pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - applied_at) * 1000,"
                " 2147483647)::int, applied_at = pg_catalog.clock_timestamp() WHERE version = {}"
            )
            .format(self.table("history"), sql.Literal(str(status)), sql.Literal(error), sql.Literal(version))
            .as_string(None)
        )

    def record_outcome(self, conn: Connection, version: str, status: Status, error: str | None) -> None:
        """Write a no-transaction migration's final status on another connection than the one
        it ran on (the first was lost, or the outcome was read from the catalog)."""
        conn.execute(self.status_update(version, status, error))

    def resolve(self, conn: Connection, version: str, status: Status) -> None:
        """A human's verdict on an unfinished row (`repair --applied`): the status changes, the
        row's times stay what they were."""
        statement = sql.SQL("UPDATE {} SET status = %s, error = NULL WHERE version = %s")
        conn.execute(statement.format(self.table("history")), (str(status), version))

    def set_checksum(self, conn: Connection, version: str, checksum: str) -> None:
        statement = sql.SQL("UPDATE {} SET checksum = %s WHERE version = %s")
        conn.execute(statement.format(self.table("history")), (checksum, version))

    def delete_row(self, conn: Connection, version: str) -> None:
        conn.execute(sql.SQL("DELETE FROM {} WHERE version = %s").format(self.table("history")), (version,))


def ensure_schema(conn: Connection, schema: str) -> bool:
    """Create `schema` if it does not exist; True when it was created."""
    row = conn.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    if row:
        return False
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    return True


def _os_user() -> str:
    """Who runs the runner; containers often run as a uid with no name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


# What RunContext.guard's failure says, in the server's message: which proof failed.
GUARD_LOCK = "release-runner: runner lock released"
GUARD_ROW = "release-runner: history row not written"


@dataclass(frozen=True, eq=False, repr=False)
class RunContext:
    """What every history row of a run records besides the migration itself."""

    history: HistoryStore
    run_id: str
    fly: dict[str, str]
    applied_by: str = field(default_factory=lambda: f"{_os_user()}@{socket.gethostname()}")
    deferred: frozenset[str] = frozenset()
    """Versions in the deferred table when the run began: only their rows need deleting."""
    lock: RunnerLock | None = None
    """The runner lock the run holds (None: the scratch replay, which holds none)."""

    @cached_property
    def insert_prefix(self) -> str:
        """The part of a history INSERT that is the same for every row of the run, composed
        once: applying a thousand migrations should not quote the same values a thousand times."""
        constant = [self.applied_by, self.run_id, *(self.fly.get(k) for k in ("app", "machine", "image"))]
        return (
            sql.SQL(
                "INSERT INTO {} (applied_by, run_id, app, machine, image, version, name,"
                " checksum, transaction_mode, status, duration_ms) VALUES ({}, "
            )
            .format(self.history.table("history"), sql.SQL(", ").join(map(sql.Literal, constant)))
            .as_string(None)
        )

    def insert(self, migration: Migration, mode: Mode, status: Status) -> str:
        """The INSERT of a history row as literal SQL, so it can ride in the migration's own
        message. duration_ms is measured by the server from the transaction's start; every
        function is schema-qualified, so a search_path a migration left behind cannot change it."""
        values = [migration.version, migration.name, migration.checksum, str(mode), str(status)]
        quoted = ", ".join(sql.Literal(value).as_string(None) for value in values)
        return (
            f"{self.insert_prefix}{quoted}, (pg_catalog.date_part('epoch', "
            "pg_catalog.clock_timestamp() - pg_catalog.now()) * 1000)::int)"
        )

    @cached_property
    def guard_prefix(self) -> str:
        """What the guard of every migration of the run shares (the lock check, the table, the
        run id), composed once, as insert_prefix is: the guard rides in every message."""
        lock = f"WHEN NOT {self.lock.held_here()} THEN '{GUARD_LOCK}' " if self.lock else ""
        where = (
            sql.SQL("SELECT 1 FROM {} WHERE run_id = {} AND")
            .format(self.history.table("history"), sql.Literal(self.run_id))
            .as_string(None)
        )
        return f"SELECT (CASE {lock}WHEN NOT EXISTS ({where}"

    def guard(self, migration: Migration, status: Status) -> str:
        """One statement that fails unless this session still holds the runner lock and the
        migration's row of this run says `status`; it rides just before COMMIT (or after a
        no-transaction migration's outcome), so a migration that released the lock or kept its
        row out (a rule or trigger on the history table) never commits as applied. It fails
        with a cast of GUARD_LOCK or GUARD_ROW (SQLSTATE 22P02): plain SQL, no plpgsql needed.
        The CASE depends on the catalog, so the cast is never folded at planning time."""
        version, wanted = (sql.Literal(value).as_string(None) for value in (migration.version, str(status)))
        return (
            f"{self.guard_prefix} version = {version} AND status = {wanted})"
            f" THEN '{GUARD_ROW}' END)::pg_catalog.int4"
        )

    def undefer(self, migration: Migration) -> str:
        """The DELETE of a post-deploy migration's deferred row, to ride with its history row."""
        return (
            sql.SQL("DELETE FROM {} WHERE version = {}")
            .format(self.history.table("deferred"), sql.Literal(migration.version))
            .as_string(None)
        )

    def record(self, conn: Connection, migrations: list[Migration], mode: Mode) -> None:
        """Insert history rows, in one transaction, for migrations this runner did not run
        (`baseline`, `imported`)."""
        with conn.transaction():
            for migration in migrations:
                conn.execute(self.insert(migration, mode, Status.APPLIED))


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
