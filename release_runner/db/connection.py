"""Reaching the server: connecting with retries, telling transient failures from permanent
ones, probing for poolers and read-only servers, the runner's advisory lock, scratch databases
and the catalog reads that are one query each."""

from __future__ import annotations

from importlib import resources
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

Connection = psycopg.Connection[Any]
# What a lost connection raises outside a migration; the runner maps it to "unreachable".
OperationalError = psycopg.OperationalError
# Any other refusal from the server outside a migration.
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
    # target_session_attrs=read-write while a standby is being promoted (a failover)
    "session is read-only",
    "server is in hot standby mode",
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
# SQLSTATEs that mean "this role may not" or "this server is read-only": the user's to fix in
# configuration (exit 2). Any other server error is reported as what it is.
_CONFIGURATION_SQLSTATES = {
    "42501": "insufficient privilege",
    "25006": "read-only transaction",
    "3D000": "database does not exist",
}

# The server probes an idle client every few seconds, so the session of a runner whose machine
# vanished (no FIN, no RST) ends, and frees the runner lock, within half a minute instead of
# the operating system's two hours. Set on the runner's connection, and again after each
# migration's RESET ALL.
KEEPALIVE = (
    "SET tcp_keepalives_idle = 10",
    "SET tcp_keepalives_interval = 5",
    "SET tcp_keepalives_count = 3",
)
# The session the runner expects, whatever the role's or database's defaults say (they outlive
# any session: a migration may have set them). Its own login role: `ALTER ROLE ... SET role`
# would make it another role from login on, and RESET ROLE goes back to that default, not to
# the login role. Triggers and foreign keys on: a default of session_replication_role =
# replica would switch them off for every migration. Backslashes in '…' read as the runner's
# parser reads them (standard_conforming_strings). Set when connecting and again after each
# migration's RESET ALL. session_replication_role is set only when it differs: only a
# superuser may set it at all, and a role that cannot is refused (SessionUnsettable).
# The runner's own login role: RESET ROLE would go back to the role's default `role` setting.
OWN_ROLE = ("SET SESSION AUTHORIZATION DEFAULT", "SET ROLE NONE")
RUNNER_SESSION = (
    *OWN_ROLE,
    "SELECT pg_catalog.set_config('session_replication_role', 'origin', false)"
    " WHERE pg_catalog.current_setting('session_replication_role') <> 'origin'",
    # The parser and the large-file lexer read '\' as PostgreSQL's default does; so must the server.
    "SET standard_conforming_strings = on",
    *KEEPALIVE,
)


class SessionUnsettable(Exception):
    """The server would not give the runner the session it expects (RUNNER_SESSION)."""


def query(name: str) -> str:
    """A query kept in `release_runner/db/queries/<name>.sql` (shipped as package data)."""
    return resources.files(__package__).joinpath("queries", f"{name}.sql").read_text()


def is_transient(error: BaseException) -> bool:
    if not isinstance(error, psycopg.OperationalError):
        return False
    message = str(error).lower()
    if any(marker in message for marker in _PERMANENT):
        return False
    return any(marker in message for marker in _TRANSIENT)


POOL_EXHAUSTED = (
    "the connection pooler had no free server connection for this runner (PgBouncer "
    "query_wait_timeout): its pool is smaller than the sessions waiting on it. Raise pool_size "
    "for this database, or point the runner at the direct URL"
)


def pool_exhausted(error: BaseException) -> bool:
    """PgBouncer queued this client for a server connection and gave up."""
    return "query_wait_timeout" in str(error)


def configuration_problem(error: BaseException) -> str | None:
    """What a server error says about the role or the server, when it says something (exit 2)."""
    sqlstate = getattr(error, "sqlstate", None)
    return _CONFIGURATION_SQLSTATES.get(sqlstate) if isinstance(sqlstate, str) else None


def open_connection(url: str, application_name: str, connect_timeout: int = 10) -> Connection:
    """One autocommit connection as every part of the runner opens it: no server-side prepared
    statements (they break behind poolers), named so other sessions see who it is."""
    return psycopg.connect(
        url,
        autocommit=True,
        prepare_threshold=None,
        application_name=application_name,
        connect_timeout=connect_timeout,
        # ...and the client notices a server that vanished as soon.
        keepalives=1,
        keepalives_idle=10,
        keepalives_interval=5,
        keepalives_count=3,
    )


def connect(url: str, application_name: str, connect_timeout: int) -> Connection:
    """One attempt at the runner's own connection, in the session it expects (RUNNER_SESSION:
    its login role, triggers on, keepalives on the server side too). (Retrying is the caller's
    policy: see run/session.py.) Raises SessionUnsettable when the server refuses that."""
    conn = open_connection(url, application_name, connect_timeout)
    try:
        conn.execute(";".join(RUNNER_SESSION))
    except psycopg.errors.InsufficientPrivilege as error:
        conn.close()
        raise SessionUnsettable(
            f"{error.diag.message_primary}: the role's or database's defaults set "
            "session_replication_role (to `replica`, which switches triggers and foreign keys off "
            "for every migration), and this role may not set it back. Run `ALTER DATABASE ... "
            "RESET session_replication_role` (and `ALTER ROLE ... RESET session_replication_role`) "
            "as a superuser, or connect as one"
        ) from None
    return conn


def probe(first: Connection, second: Connection) -> tuple[bool, bool]:
    """(transaction_pooler, read_only) for the server behind two connections of one URL,
    before the lock is taken.

    Pooler: two idle client connections that report the same backend pid share a server
    connection, and a pid that changes between two queries of one client means the same.
    Read-only: a hot standby, or a server set to read-only transactions."""
    with second:
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


def server_version(conn: Connection) -> str:
    return str(conn.info.parameter_status("server_version") or "?")


def broken(conn: Connection) -> bool:
    return conn.closed or conn.broken


def alive(conn: Connection) -> bool:
    """Whether the connection still answers (one round trip)."""
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def in_transaction(conn: Connection) -> bool:
    """The session is inside a transaction block (open or aborted): closing it rolls it back."""
    return conn.pgconn.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR)


def with_dbname(url: str, dbname: str) -> str:
    """The same connection settings, another database."""
    return psycopg.conninfo.make_conninfo(url, dbname=dbname)


def with_search_path(url: str, schema: str) -> str:
    """The same connection settings, with `schema` as the search_path of every session."""
    return psycopg.conninfo.make_conninfo(url, options=f"-c search_path={schema}")


def create_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
