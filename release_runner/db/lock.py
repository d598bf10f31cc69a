"""The runner lock: a session advisory lock keyed on the history table's name, taken with
pg_try_advisory_lock and polled (never a blocking lock, which can deadlock against CREATE INDEX
CONCURRENTLY), and the sessions that hold it or block a migration."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import psycopg

from release_runner.db.connection import Connection, query


@dataclass(frozen=True, eq=False, repr=False)
class RunnerLock:
    """The advisory lock of one history table: one runner at a time works on it."""

    key: int

    @classmethod
    def of(cls, history_schema: str) -> RunnerLock:
        """A stable signed 64-bit key derived from the history table's name."""
        digest = hashlib.sha256(f"release-runner:{history_schema}.history".encode()).digest()
        return cls(int.from_bytes(digest[:8], "big", signed=True))

    def try_take(self, conn: Connection) -> bool:
        """Take it twice (a session advisory lock counts its holds), so that held_here() can
        prove it held by letting go of one hold and taking it again; a second attempt of a
        lock this session holds never fails."""
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s) AND pg_try_advisory_lock(%s)", (self.key,) * 2
        ).fetchone()
        return bool(row and row[0])

    @property
    def parts(self) -> dict[str, int]:
        """The key as pg_locks shows a bigint advisory key: classid (high half), objid (low)."""
        unsigned = self.key & 0xFFFFFFFFFFFFFFFF
        return {"classid": unsigned >> 32, "objid": unsigned & 0xFFFFFFFF}

    def held_here(self) -> str:
        """SQL that is true while this session holds the lock, to ride in another message:
        a migration may have released it (pg_advisory_unlock_all(), DISCARD ALL). It lets go
        of one of the two holds try_take() took and takes it again, in that order (AND of a
        CASE): unlocking fails where the session holds none, and the second hold keeps the
        lock this session's throughout, so no other session can take it in between. Two
        calls into the lock manager, where reading pg_locks copies the whole lock table (a
        fifth of a millisecond of the server's time per migration)."""
        return (
            f"CASE WHEN pg_catalog.pg_advisory_unlock({self.key}::bigint)"
            f" THEN pg_catalog.pg_try_advisory_lock({self.key}::bigint) ELSE false END"
        )

    def holders(self, conn: Connection) -> list[dict[str, Any]]:
        """The sessions holding it: pid, application name, state, idle seconds, query."""
        with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            return cur.execute(query("lock_holder"), self.parts).fetchall()


def terminate(conn: Connection, pid: int) -> bool:
    """End another backend (a vanished runner's); False when this role may not."""
    try:
        row = conn.execute("SELECT pg_catalog.pg_terminate_backend(%s)", (pid,)).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return False
    return bool(row and row[0])


def blockers(conn: Connection, pid: int) -> list[dict[str, Any]]:
    """The sessions that keep backend `pid` waiting for a lock."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(query("blockers"), {"pid": pid}).fetchall()
