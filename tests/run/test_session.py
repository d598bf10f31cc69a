"""The session and the executor as a library caller meets them, and what one migration may not
leave behind: a replaced connection is owned and closed, only configuration errors are reported
as configuration, and nothing a migration sets reaches the next one or the runner."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog

from release_runner import commands
from release_runner.core.errors import MigrationFailed, ReleaseError
from release_runner.core.events import Event
from release_runner.core.migrations import read_directory
from release_runner.core.preflight import prepare_all
from release_runner.core.settings import Settings
from release_runner.db import execute
from release_runner.db.history import HistoryStore, RunContext
from release_runner.db.lock import RunnerLock
from tests.conftest import Server, history, run_cli, running, wait_for, write
from tests.proxy import Proxy


def _lock_is_free(admin: psycopg.Connection[Any]) -> bool:
    key = RunnerLock.of("release_runner").key
    row = admin.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    if row and row[0]:
        admin.execute("SELECT pg_advisory_unlock(%s)", (key,))
    return bool(row and row[0])


def test_a_replaced_connection_is_closed_when_the_run_fails(
    tmp_path: Path, proxy: Proxy, server: Server, database: str, admin: psycopg.Connection[Any]
) -> None:
    """A library call reconnects mid-run, then fails: the replacement connection is closed and
    the runner lock released at once, not left open until garbage collection."""
    write(
        tmp_path,
        {
            "0001_slow.sql": "CREATE TABLE a (id int);\nSELECT pg_sleep(1);\n",
            "0002_bad.sql": "SELECT 1 / 0;\n",
        },
    )
    settings = Settings(migrations_dir=tmp_path, database_url=server.url(database, proxy.port), verify=False)
    events: list[Event] = []
    failure: list[BaseException] = []

    def run() -> None:
        with structlog.testing.capture_logs() as captured:
            try:
                commands.migrate(settings, "library")
            except ReleaseError as error:
                failure.append(error)
        events.extend(Event(entry["event"]) for entry in captured)

    worker = threading.Thread(target=run)
    worker.start()
    wait_for(lambda: running(admin, "pg_sleep"))
    proxy.cut()
    worker.join(timeout=60)
    assert isinstance(failure[0], MigrationFailed)
    assert Event.MIGRATION_RETRY in events and Event.MIGRATION_APPLIED in events
    # The failure is still referenced (as a caller holding it would): the lock is free anyway,
    # as soon as the server has processed the close.
    wait_for(lambda: _lock_is_free(admin), timeout=5)
    assert [row[0] for row in history(admin)] == ["0001"]


def test_an_old_failed_row_can_be_repaired(tmp_path: Path, url: str, admin: psycopg.Connection[Any]) -> None:
    """`repair --applied` on a row written 30 days ago works (it used to overflow an int and be
    reported as missing privileges)."""
    write(tmp_path, {"0001_idx.sql": "CREATE INDEX CONCURRENTLY i ON missing_table (id);\n"})
    assert run_cli("migrate", "--migrations", str(tmp_path), url=url).code == 1
    admin.execute("UPDATE release_runner.history SET applied_at = now() - interval '30 days'")
    result = run_cli(
        "repair", "--applied", "0001", "--reason", "built by hand", "--migrations", str(tmp_path), url=url
    )
    assert result.code == 0, result.stdout
    assert history(admin) == [("0001", "applied", "no-transaction")]


def test_a_server_error_that_is_not_configuration_is_not_called_privileges(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """An error in the runner's own step that is not about privileges says what it is."""
    write(tmp_path, {"0001_a.sql": "SELECT 1;\n"})
    admin.execute("CREATE SCHEMA release_runner")
    admin.execute("CREATE TABLE release_runner.history (version int)")  # not ours: wrong columns
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code != 2, result.stdout
    assert "privileges" not in result.finished["error"]
    assert "42703" in result.stdout or "column" in result.finished["error"]


@pytest.mark.parametrize("transactional", [True, False])
def test_a_migration_leaves_no_session_state(url: str, tmp_path: Path, transactional: bool) -> None:
    """After a migration (with or without a transaction) the connection's role, search_path,
    timeouts and temporary tables are what they were before it."""
    body = (
        "SELECT pg_catalog.set_config('search_path', '', false);\nSET lock_timeout = '1ms';\n"
        "SET ROLE pg_monitor;\nCREATE TEMP TABLE leftover (id int);\n"
        if transactional
        else "-- release-runner: no-transaction\n-- release-runner: statement-timeout=7s\nVACUUM pg_class;\n"
    )
    write(tmp_path, {"0001_x.sql": body})
    (prepared,) = prepare_all(read_directory(tmp_path).migrations)
    with psycopg.connect(url, autocommit=True) as conn:
        before = conn.execute(_STATE).fetchone()
        HistoryStore("release_runner").ensure(conn)
        execute.apply(conn, prepared, RunContext(HistoryStore("release_runner"), "test", {}), 5.0, 7.0)
        assert conn.execute(_STATE).fetchone() == before
        assert conn.execute("SELECT to_regclass('pg_temp.leftover')").fetchone() == (None,)


_STATE = (
    "SELECT current_user, session_user, current_setting('search_path'), current_setting('lock_timeout'),"
    " current_setting('statement_timeout')"
)


def test_a_migration_that_empties_search_path_causes_no_false_drift(
    tmp_path: Path, server: Server, database: str, url: str
) -> None:
    """pg_dump's preamble (`set_config('search_path', '', false)`) in the last migration: the
    snapshot, migrate's verification and a second migrate all agree (the catalog reads after it
    used to render names qualified, and the second migrate failed with drift)."""
    write(
        tmp_path,
        {
            "0001_t.sql": "CREATE TABLE t (id serial PRIMARY KEY, n int DEFAULT 1 CHECK (n > 0));\n",
            "0002_dump.sql": "SELECT pg_catalog.set_config('search_path', '', false);\n"
            "CREATE TABLE public.u (id int REFERENCES public.t (id));\n",
        },
    )
    snapshot = run_cli("snapshot", "--migrations", str(tmp_path), "--scratch-url", server.url("postgres"))
    assert snapshot.code == 0, snapshot.stdout
    first = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert first.code == 0, first.stdout
    second = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert second.code == 0, second.stdout


def test_a_role_a_migration_switches_to_does_not_reach_the_next(
    tmp_path: Path, server: Server, url: str, admin: psycopg.Connection[Any]
) -> None:
    """`SET ROLE app_owner` in one migration: its own tables belong to app_owner, the history
    row is still written, and the next migration's table belongs to the runner's role."""
    admin.execute("DROP ROLE IF EXISTS app_owner")
    admin.execute("CREATE ROLE app_owner")
    admin.execute("GRANT CREATE ON SCHEMA public TO app_owner")
    try:
        write(
            tmp_path,
            {
                "0001_owner.sql": "SET ROLE app_owner;\nCREATE TABLE owned (id int);\n",
                "0002_next.sql": "CREATE TABLE next_one (id int);\n",
            },
        )
        result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
        assert result.code == 0, result.stdout
        owners = dict(
            admin.execute(
                "SELECT relname, pg_get_userbyid(relowner) FROM pg_class WHERE relname IN ('owned', 'next_one')"
            ).fetchall()
        )
        assert owners == {"owned": "app_owner", "next_one": "runner"}
        assert [row[1] for row in history(admin)] == ["applied", "applied"]
    finally:
        admin.execute("DROP OWNED BY app_owner")
        admin.execute("DROP ROLE app_owner")
