"""A background thread that watches the migration in progress from a connection of its own:
it names the sessions that block it, and cancels it, once, when the run's time budget is spent."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg

from release_runner.core import mask
from release_runner.core.redact import redact
from release_runner.db.connection import Connection, open_connection
from release_runner.db.lock import blockers


class Watcher:
    """Started once per run; `watching()` points it at the migration that runs now."""

    def __init__(
        self,
        url: str,
        application_name: str,
        deadline: float | None,
        report: Callable[[str, list[dict[str, Any]]], None],
    ) -> None:
        self._url = url
        self._application_name = f"{application_name} (watcher)"
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
            # After a miss, look again at the next tick: lock-ahead waits in rounds with short
            # gaps between them, and a look that lands in a gap must not cost a second.
            if time.monotonic() >= report_at and self._check_blockers(version, conn):
                self._stop.wait(0.75)

    def _cancel(self, conn: Connection) -> None:
        # If the connection is gone the main thread sees that itself.
        with suppress(psycopg.Error):
            conn.cancel_safe(timeout=5.0)

    def _check_blockers(self, version: str, conn: Connection) -> bool:
        """Report the sessions blocking the migration now; whether there were any."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = open_connection(self._url, self._application_name, 5)
            found = blockers(self._conn, conn.info.backend_pid)
        except psycopg.Error:
            return False  # reporting is best effort; the migration's own outcome is what matters
        for row in found:
            row["query"] = redact(mask.statement(row["query"] or ""))
        if found:
            self.last_blockers = found
            self._report(version, found)
        return bool(found)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        if self._conn is not None:
            self._conn.close()
