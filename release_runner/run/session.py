"""A run's hold on the target database: connect (with retries), refuse transaction-mode poolers
and read-only servers, take the runner lock, and own the connection for the whole run. After a
reconnect the Session closes the dead connection and owns the new one, so whatever ends the
run, exactly one connection is closed and the lock goes with it."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import tenacity
from tenacity import RetryCallState

from release_runner.core import mask
from release_runner.core.errors import LockBusy, TimeBudgetSpent, UnreachableError, UsageError
from release_runner.core.events import Event
from release_runner.core.redact import redact
from release_runner.core.settings import Settings
from release_runner.db import connection
from release_runner.db.connection import Connection
from release_runner.db.history import HistoryStore
from release_runner.db.lock import RunnerLock, terminate
from release_runner.run import interrupts, retrying
from release_runner.run.log import emit
from release_runner.run.retrying import Deadline

T = TypeVar("T")


def require_url(settings: Settings) -> str:
    if not settings.database_url:
        raise UsageError(
            "no database URL: pass --database-url or set RELEASE_RUNNER_DATABASE_URL, "
            "DIRECT_DATABASE_URL or DATABASE_URL"
        )
    return settings.database_url


def said(error: BaseException) -> str:
    """What the server or libpq said, fit to print: quoted values masked (libpq quotes what it
    cannot read of a URL, a password with a space among it), secrets redacted, and a name that
    does not resolve said in words rather than as the resolver's `[Errno -2]`."""
    text = _UNRESOLVED.sub(r"the host name '\1' does not resolve (DNS: \2)", str(error).strip())
    return redact(mask.message(text, []) or "")


# psycopg's words for a failed getaddrinfo(): "failed to resolve host 'x': [Errno -2] Name or ..."
_UNRESOLVED = re.compile(r"failed to resolve host '([^']*)': \[Errno -?\d+\] ([^;\n]*)")


def open_connection(url: str, application_name: str, budget: float, report: bool = True) -> Connection:
    """Connect with retries of transient failures (equal-jitter backoff from 0.25 s to 5 s)
    until `budget` seconds have passed; `db.connect_retry` reports each retry when `report`.
    libpq's own connect_timeout is capped at the time left, so one hung attempt cannot eat the
    budget.

    Raises UnreachableError when the budget is spent, UsageError for failures that never heal
    (wrong password, missing database, malformed URL)."""
    # An attempt takes up to 2 s (libpq's least): none starts with less than a second left.
    deadline = Deadline(time.monotonic() + budget, reserve=1.0)

    def attempt() -> Connection:
        # libpq counts whole seconds and treats anything under 2 as 2: round down, so that an
        # attempt started with the time left ends by the deadline.
        left = budget if deadline.at is None else deadline.at - time.monotonic()
        return connection.connect(url, application_name, max(2, min(10, math.floor(left))))

    def before_sleep(state: RetryCallState) -> None:
        if report:
            reason = said(retrying.failure(state))
            delay_ms = round(retrying.delay(state) * 1000)
            emit(Event.DB_CONNECT_RETRY, attempt=state.attempt_number, reason=reason, delay_ms=delay_ms)

    try:
        return retrying.policy(
            connection.is_transient, before_sleep, wait=retrying.equal_jitter(0.25, 5.0), deadline=deadline
        )(attempt)
    except connection.SessionUnsettable as error:
        raise UsageError(redact(str(error))) from None
    except connection.DatabaseError as error:
        message = said(error)
        if connection.pool_exhausted(error):
            raise UnreachableError(connection.POOL_EXHAUSTED, reason=message) from None
        if connection.is_transient(error):
            raise UnreachableError(
                f"database unreachable within {budget:g}s: {message}; check the URL's host and "
                "port, or raise --connect-timeout",
                reason=message,
            ) from None
        raise UsageError(
            f"cannot connect: {message}; check the database URL (user, password, database name)",
            reason=message,
        ) from None


def connect(settings: Settings, deadline: float | None = None) -> Connection:
    """Connect to the target with bounded retries, within --connect-timeout and the run's
    `deadline` (time budget); emits `db.connect_retry` and `db.connected`."""
    budget = settings.connect_timeout
    if deadline is not None:
        budget = min(budget, max(deadline - time.monotonic(), 0.0))
    conn = open_connection(require_url(settings), settings.application_name, budget)
    dropped = settings.database_url_dropped
    emit(
        Event.DB_CONNECTED,
        source=settings.database_url_source,
        server_version=connection.server_version(conn),
        backend_pid=conn.info.backend_pid,
        **({"url_parameters_dropped": list(dropped)} if dropped else {}),
    )
    return conn


def probe(settings: Settings, first: Connection) -> tuple[bool, bool]:
    """(transaction_pooler, read_only), from a second connection beside `first` (db.probe). A
    role limited to one connection is refused plainly: the runner needs two at once (this
    probe, and the watcher that names blockers)."""
    try:
        second = open_connection(
            require_url(settings), settings.application_name, settings.connect_timeout, report=False
        )
    except UsageError as error:
        if "too many connections for role" not in str(error.fields.get("reason")):
            raise
        raise UsageError(
            "the role may open only one connection (CONNECTION LIMIT 1); release-runner needs two "
            "at the same time: one applies, one watches for blockers. ALTER ROLE ... CONNECTION "
            "LIMIT 3 (or more, for concurrent deploys), or run it as another role"
        ) from None
    return connection.probe(first, second)


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
        self.settings = settings
        self.deadline = deadline
        self._conn = conn
        interrupts.register(conn)  # in a fleet, an interruption cancels what it runs
        self.lock = RunnerLock.of(settings.history_schema)
        self.history = HistoryStore(settings.history_schema)
        self.reconnects = 0
        self.after_reconnect: Callable[[], None] | None = None
        """Run once the lock is taken again after a reconnect (the executor checks there that
        what this run committed is still on the server)."""

    @property
    def conn(self) -> Connection:
        return self._conn

    def _replace(self) -> Connection:
        """Close the connection and connect again within the connect budget."""
        self.close()
        self._conn = connect(self.settings, self.deadline)
        interrupts.register(self._conn)
        self.reconnects += 1
        return self._conn

    def reconnect(self) -> Connection:
        """After a lost connection: close it, connect again within the connect budget and
        re-take the lock."""
        self._replace()
        self.take_lock()
        if self.after_reconnect is not None:
            self.after_reconnect()
        return self.conn

    def take_lock(self) -> None:
        """Poll pg_try_advisory_lock (never a blocking lock: it can deadlock against CREATE
        INDEX CONCURRENTLY) every 50 ms doubling to 1 s, until --lock-wait or the time budget
        runs out, saying who holds it every 5 s. A holder that is provably not working is
        taken over; a connection lost while waiting is replaced."""
        lock_wait_ends = time.monotonic() + self.settings.lock_wait
        deadline = Deadline(min(lock_wait_ends, self.deadline or lock_wait_ends))
        holders: list[dict[str, Any]] = []
        reported: list[float] = []

        def attempt() -> bool:
            nonlocal holders
            try:
                if self.lock.try_take(self.conn):
                    return True
                holders = self.lock.holders(self.conn)
                return self._take_over(holders) and self.lock.try_take(self.conn)
            except connection.OperationalError:
                if not connection.broken(self.conn):
                    raise
                self._replace()
                return False

        def before_sleep(state: RetryCallState) -> None:
            if not reported or time.monotonic() - reported[-1] >= 5.0:
                emit(Event.LOCK_WAITING, holders=holders, key=str(self.lock.key))
                reported.append(time.monotonic())

        waiting = tenacity.Retrying(
            stop=deadline.stop(),
            wait=deadline.clip(tenacity.wait_exponential(multiplier=0.05, max=1.0)),
            retry=tenacity.retry_if_result(lambda acquired: not acquired),
            before_sleep=before_sleep,
            retry_error_callback=lambda _: False,
            sleep=interrupts.sleep,
        )
        if not waiting(attempt):
            budget = deadline.at is not None and deadline.at < lock_wait_ends
            spent = (
                "the time budget was spent" if budget else f"not acquired within {self.settings.lock_wait:g}s"
            )
            raise (TimeBudgetSpent if budget else LockBusy)(
                f"runner lock {spent}: another release-runner is still working on this "
                "database; rerun when it is done, or raise --lock-wait",
                holders=holders,
            )
        emit(Event.LOCK_ACQUIRED, key=str(self.lock.key))

    def read(self, step: Callable[[Connection], T]) -> T:
        """Run a step that may run twice (it reads, or writes only what it reads back first);
        if the connection is lost meanwhile, reconnect (within the connect budget, the lock
        taken again) and run it once more."""
        try:
            return step(self.conn)
        except connection.OperationalError:
            # The error may come from another connection of the step (the pooler probe's
            # second one) while this one is cut too but has not noticed: ask it.
            if not connection.broken(self.conn) and connection.alive(self.conn):
                return step(self.conn)
        return step(self.reconnect())

    def _take_over(self, holders: list[dict[str, Any]]) -> bool:
        """End the session of a holder that is provably not working: a release-runner session
        idle (or idle in a transaction) longer than any live runner ever is between two of its
        statements. That is what a runner whose machine vanished leaves (no FIN, no RST: the
        server keeps its session until TCP keepalive gives up). True when one was ended."""
        for holder in holders:
            stale = (
                str(holder["application_name"] or "").startswith(self.settings.application_name)
                and str(holder["state"] or "").startswith("idle")
                and (holder["idle_s"] or 0) >= self.settings.stale_lock_after
            )
            if stale and terminate(self.conn, int(holder["pid"])):
                emit(
                    Event.LOCK_TAKEN_OVER,
                    holder=holder,
                    reason=f"its session was {holder['state']} for {holder['idle_s']}s (a live runner "
                    f"never is for {self.settings.stale_lock_after:g}s): a runner that vanished",
                )
                return True
        return False

    def close(self) -> None:
        interrupts.unregister(self._conn)
        self._conn.close()  # ends the session: an open transaction rolls back, the lock goes


@contextmanager
def locked(settings: Settings, deadline: float | None = None) -> Iterator[Session]:
    """Connect, refuse transaction-mode poolers and read-only servers, take the runner lock;
    release it at the end. Connecting and waiting for the lock end by `deadline` (the time
    budget) too. A lost connection becomes `unreachable`; a server error that is the role's or
    the server's configuration becomes a usage error; any other error stays itself."""
    session = Session(settings, connect(settings, deadline), deadline)
    try:
        pooled, read_only = session.read(lambda conn: probe(settings, conn))
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
    except connection.OperationalError as error:
        # A connection problem, whichever connection it came from: the database could not be
        # reached for what the run needed (exit 4), never a crash.
        message = said(error)
        if connection.pool_exhausted(error):
            raise UnreachableError(connection.POOL_EXHAUSTED) from error
        # Lost between migrations (or while reading history or the catalog): a transactional
        # migration commits with its row or not at all, and a no-transaction one whose end was
        # not seen was settled from the catalog or is left `started` for the next run to settle.
        raise UnreachableError(
            f"lost the connection to the database: {message}; what was applied is recorded "
            "(`release-runner status` shows it); deploy again to continue"
        ) from error
    except connection.DatabaseError as error:
        problem = connection.configuration_problem(error)
        if problem is None:
            raise
        raise UsageError(
            f"the database refused a step of the runner ({error.sqlstate}, {problem}): "
            f"{said(error)}; check the role's privileges (it needs CREATE on the "
            "database for the history schema, and ownership of what the migrations change) and "
            "that the URL points at the primary",
            sqlstate=error.sqlstate,
        ) from error
    finally:
        session.close()
