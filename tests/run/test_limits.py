"""Limits that are kept, whatever the runner waits for: the time budget while waiting for the
lock, the connect timeout against a server that never answers, a lock held by a runner that
vanished (taken over), and a role that may open only one connection."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from release_runner.db.lock import RunnerLock
from tests.conftest import PASSWORD, ROLE, Server, history, run_cli, write

KEY = RunnerLock.of("release_runner").key


def test_a_vanished_runner_s_lock_is_taken_over(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A release-runner session that holds the lock and sits idle (a runner whose machine
    vanished) is ended and named in lock.taken_over; the deploy succeeds."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a ();\n"})
    with psycopg.connect(url, autocommit=True, application_name="release-runner") as vanished:
        vanished.execute("SELECT pg_advisory_lock(%s)", (KEY,))
        pid = vanished.info.backend_pid
        started = time.monotonic()
        result = run_cli("migrate", "--migrations", str(tmp_path), "--stale-lock-after", "1s", url=url)
        took = time.monotonic() - started
    assert result.code == 0, result.stdout
    (taken,) = result.named("lock.taken_over")
    assert taken["holder"]["pid"] == pid
    assert took < 10
    assert history(admin) == [("0001", "applied", "transaction")]


def test_a_working_runner_is_never_taken_over(tmp_path: Path, url: str) -> None:
    """A holder that is running a statement, or that is not a release-runner, is waited for."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a ();\n"})
    for name, busy in (("release-runner", True), ("other-deploy", False)):
        with psycopg.connect(url, autocommit=True, application_name=name) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (KEY,))
            worker = threading.Thread(target=_busy, args=(holder,)) if busy else None
            if worker:
                worker.start()
            time.sleep(1.5)
            result = run_cli(
                "migrate",
                "--migrations",
                str(tmp_path),
                "--stale-lock-after",
                "1s",
                "--lock-wait",
                "1s",
                url=url,
            )
            if worker:
                holder.cancel_safe()
                worker.join()
        assert result.code == 4, result.stdout
        assert not result.named("lock.taken_over")


def _busy(holder: psycopg.Connection[Any]) -> None:
    """A statement that runs until the test cancels it."""
    with contextlib.suppress(psycopg.errors.QueryCanceled):
        holder.execute("SELECT pg_sleep(60)")


def test_the_time_budget_bounds_the_wait_for_the_lock(tmp_path: Path, url: str) -> None:
    """--time-budget 3s while another session holds the lock (and --lock-wait is long): exit 4
    within about a second of the budget (it used to wait 20 s)."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a ();\n"})
    with psycopg.connect(url, autocommit=True, application_name="other-deploy") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (KEY,))
        started = time.monotonic()
        result = run_cli("migrate", "--migrations", str(tmp_path), "--time-budget", "3s", url=url)
        took = time.monotonic() - started
    assert result.code == 4
    assert "time budget" in result.finished["error"]
    assert took < 3 + 2.5  # process start, with margin for a loaded machine


def test_a_role_limited_to_one_connection_is_told_plainly(
    tmp_path: Path, server: Server, database: str
) -> None:
    """CONNECTION LIMIT 1 (on a role that is not a superuser, whom limits do not bind): exit 2
    saying the runner needs two connections (it used to say it lost the connection)."""
    write(tmp_path, {"0001_a.sql": "SELECT 1;\n"})
    role = "limited_runner"
    with psycopg.connect(server.admin, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1 PASSWORD '{PASSWORD}'")
        try:
            url = server.url(database).replace(f"//{ROLE}:", f"//{role}:")
            result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
        finally:
            conn.execute(f"DROP ROLE {role}")
    assert result.code == 2, result.stdout
    assert "CONNECTION LIMIT" in result.finished["error"]
