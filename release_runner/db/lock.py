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
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        return bool(row and row[0])

    @property
    def parts(self) -> dict[str, int]:
        """The key as pg_locks shows a bigint advisory key: classid (high half), objid (low)."""
        unsigned = self.key & 0xFFFFFFFFFFFFFFFF
        return {"classid": unsigned >> 32, "objid": unsigned & 0xFFFFFFFF}

    def held_here(self) -> str:
        """SQL that is true while this session holds the lock, to ride in another message:
        a migration may have released it (pg_advisory_unlock_all(), DISCARD ALL)."""
        classid, objid = self.parts["classid"], self.parts["objid"]
        return (
            "EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND granted"
            " AND pid = pg_catalog.pg_backend_pid() AND objsubid = 1"
            f" AND classid = {classid}::bigint::oid AND objid = {objid}::bigint::oid)"
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
