"""A run's hold on the target database: connect (with retries), refuse transaction-mode poolers
and read-only servers, take the runner lock, and own the connection for the whole run. After a
reconnect the Session closes the dead connection and owns the new one, so whatever ends the
run, exactly one connection is closed and the lock goes with it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from release_runner.cli.log import redact
from release_runner.core.errors import UnreachableError, UsageError
from release_runner.core.events import Event, emit
from release_runner.core.settings import Settings

if TYPE_CHECKING:
    from release_runner.db import Connection

T = TypeVar("T")


def require_url(settings: Settings) -> str:
    if not settings.database_url:
        raise UsageError(
            "no database URL: pass --database-url or set RELEASE_RUNNER_DATABASE_URL, "
            "DIRECT_DATABASE_URL or DATABASE_URL"
        )
    return settings.database_url


def connect(settings: Settings, deadline: float | None = None) -> Connection:
    """Connect to the target with bounded retries, within --connect-timeout and the run's
    `deadline` (time budget); emits `db.connect_retry` and `db.connected`."""
    from release_runner import db

    def on_retry(attempt: int, reason: str, delay: float) -> None:
        emit(Event.DB_CONNECT_RETRY, attempt=attempt, reason=reason, delay_ms=round(delay * 1000))

    budget = settings.connect_timeout
    if deadline is not None:
        budget = min(budget, max(deadline - time.monotonic(), 0.0))
    conn = db.connect(require_url(settings), budget, settings.application_name, on_retry)
    dropped = settings.database_url_dropped
    emit(
        Event.DB_CONNECTED,
        source=settings.database_url_source,
        server_version=db.server_version(conn),
        backend_pid=conn.info.backend_pid,
        **({"url_parameters_dropped": list(dropped)} if dropped else {}),
    )
    return conn


@contextmanager
def connected(settings: Settings) -> Iterator[Connection]:
    """A plain connection for the read-only commands, closed at the end."""
    conn = connect(settings)
    try:
        yield conn
    finally:
        conn.close()


class Session:
    """The locked connection of a run. `conn` is replaced only through `reconnect()`, which
    closes the old one first."""

    def __init__(self, settings: Settings, conn: Connection, deadline: float | None = None) -> None:
        from release_runner import db

        self.settings = settings
        self.deadline = deadline
        self.conn = conn
        self.key = db.lock_key(settings.history_schema)
        self.reconnects = 0

    def reconnect(self) -> Connection:
        """After a lost connection: close it, connect again within the connect budget and
        re-take the lock."""
        self.conn.close()
        self.conn = connect(self.settings, self.deadline)
        self.reconnects += 1
        self.take_lock()
        return self.conn

    def take_lock(self) -> None:
        """Poll pg_try_advisory_lock (never a blocking lock: it can deadlock against CREATE
        INDEX CONCURRENTLY) until --lock-wait or the time budget runs out, saying who holds it.
        A holder that is provably not working is taken over; a connection lost while waiting
        is replaced."""
        from release_runner import db

        lock_wait_ends = time.monotonic() + self.settings.lock_wait
        deadline = min(lock_wait_ends, self.deadline or lock_wait_ends)
        delay = 0.05
        last_report: float | None = None
        while True:
            try:
                if db.try_lock(self.conn, self.key):
                    break
                holders = db.lock_holders(self.conn, self.key)
                if self._take_over(holders):
                    continue
                now = time.monotonic()
                if now >= deadline:
                    spent = (
                        "the time budget was spent"
                        if deadline < lock_wait_ends
                        else (f"not acquired within {self.settings.lock_wait:g}s")
                    )
                    raise UnreachableError(
                        f"runner lock {spent}: another release-runner is still working on this "
                        "database; rerun when it is done, or raise --lock-wait",
                        holders=holders,
                    )
                if last_report is None or now - last_report >= 5.0:
                    emit(Event.LOCK_WAITING, holders=holders, key=str(self.key))
                    last_report = now
            except db.OperationalError:
                if not db.broken(self.conn):
                    raise
                self.conn.close()
                self.conn = connect(self.settings, self.deadline)
                self.reconnects += 1
                continue
            time.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
            delay = min(delay * 2, 1.0)
        emit(Event.LOCK_ACQUIRED, key=str(self.key))

    def read(self, step: Callable[[Connection], T]) -> T:
        """Run a step that may run twice (it reads, or writes only what it reads back first);
        if the connection is lost meanwhile, reconnect (within the connect budget, the lock
        taken again) and run it once more."""
        from release_runner import db

        try:
            return step(self.conn)
        except db.OperationalError:
            # The error may come from another connection of the step (the pooler probe's
            # second one) while this one is cut too but has not noticed: ask it.
            if not db.broken(self.conn) and db.alive(self.conn):
                return step(self.conn)
        return step(self.reconnect())

    def _take_over(self, holders: list[dict[str, Any]]) -> bool:
        """End the session of a holder that is provably not working: a release-runner session
        idle (or idle in a transaction) longer than any live runner ever is between two of its
        statements. That is what a runner whose machine vanished leaves (no FIN, no RST: the
        server keeps its session until TCP keepalive gives up). True when one was ended."""
        from release_runner import db

        for holder in holders:
            stale = (
                str(holder["application_name"] or "").startswith(self.settings.application_name)
                and str(holder["state"] or "").startswith("idle")
                and (holder["idle_s"] or 0) >= self.settings.stale_lock_after
            )
            if stale and db.terminate(self.conn, int(holder["pid"])):
                emit(
                    Event.LOCK_TAKEN_OVER,
                    holder=holder,
                    reason=f"its session was {holder['state']} for {holder['idle_s']}s (a live runner "
                    f"never is for {self.settings.stale_lock_after:g}s): a runner that vanished",
                )
                return True
        return False

    def close(self) -> None:
        self.conn.close()  # ends the session: an open transaction rolls back, the lock goes


@contextmanager
def locked(settings: Settings, deadline: float | None = None) -> Iterator[Session]:
    """Connect, refuse transaction-mode poolers and read-only servers, take the runner lock;
    release it at the end. Connecting and waiting for the lock end by `deadline` (the time
    budget) too. A lost connection becomes `unreachable`; a server error that is the role's or
    the server's configuration becomes a usage error; any other error stays itself."""
    from release_runner import db

    session = Session(settings, connect(settings, deadline), deadline)
    try:
        url, name, budget = require_url(settings), settings.application_name, settings.connect_timeout
        pooled, read_only = session.read(lambda conn: db.probe(url, conn, name, budget))
        if pooled:
            raise UsageError(
                "the database URL goes through a transaction-mode pooler (PgBouncer "
                "pool_mode=transaction, a Neon -pooler host, Supabase port 6543), which breaks "
                "the runner's session lock and SET; set DIRECT_DATABASE_URL (or --database-url) "
                "to the direct host"
            )
        if read_only:
            raise UsageError(
                "the database URL points at a read-only server (a replica, or default_transaction_"
                "read_only); point it at the primary"
            )
        session.take_lock()
        yield session
    except db.OperationalError as error:
        # A connection problem, whichever connection it came from: the database could not be
        # reached for what the run needed (exit 4), never a crash.
        message = redact(str(error).strip())
        if db.pool_exhausted(error):
            raise UnreachableError(db.POOL_EXHAUSTED) from error
        # Lost between migrations (or while reading history or the catalog): a transactional
        # migration commits with its row or not at all, and a no-transaction one whose end was
        # not seen was settled from the catalog or is left `started` for the next run to settle.
        raise UnreachableError(
            f"lost the connection to the database: {message}; what was applied is recorded "
            "(`release-runner status` shows it); deploy again to continue"
        ) from error
    except db.DatabaseError as error:
        problem = db.configuration_problem(error)
        if problem is None:
            raise
        raise UsageError(
            f"the database refused a step of the runner ({error.sqlstate}, {problem}): "
            f"{redact(str(error).strip())}; check the role's privileges (it needs CREATE on the "
            "database for the history schema, and ownership of what the migrations change) and "
            "that the URL points at the primary",
            sqlstate=error.sqlstate,
        ) from error
    finally:
        session.close()
