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
from tests.conftest import PASSWORD, ROLE, Server, history, run_cli, wait_for, write

KEY = RunnerLock.of("release_runner").key


def _idle_for(admin: psycopg.Connection[Any], pid: int, seconds: float) -> None:
    """Wait until the server shows session `pid` idle for `seconds` (its own clock)."""
    wait_for(lambda: (admin.execute(IDLE, (pid,)).fetchone() or (0,))[0] >= seconds, timeout=seconds + 30)


IDLE = "SELECT extract(epoch FROM now() - state_change) FROM pg_stat_activity WHERE pid = %s"


def _migrate_past(directory: Path, url: str, lock_wait: str) -> Any:
    """migrate with the least --stale-lock-after a run may give (20 s) and a short lock wait."""
    args = ("--stale-lock-after", "20s", "--lock-wait", lock_wait)
    return run_cli("migrate", "--migrations", str(directory), *args, url=url)


def test_a_vanished_runner_s_lock_is_taken_over_and_another_application_s_is_not(
    tmp_path: Path, server: Server, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A release-runner session that holds the lock and sits idle past --stale-lock-after (a
    runner whose machine vanished) is ended and named in lock.taken_over, and the deploy goes
    on; a session of another application, idle as long, is waited for (exit 4)."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a ();\n"})
    other_database = f"{url.rsplit('/', 1)[1]}_other"
    admin.execute(f"CREATE DATABASE {other_database}")
    other_url = server.url(other_database)
    try:
        with (
            psycopg.connect(url, autocommit=True, application_name="release-runner") as vanished,
            psycopg.connect(other_url, autocommit=True, application_name="other-deploy") as other,
        ):
            for holder in (vanished, other):
                holder.execute("SELECT pg_advisory_lock(%s)", (KEY,))
            pid = vanished.info.backend_pid
            _idle_for(admin, other.info.backend_pid, 21)
            _idle_for(admin, pid, 21)
            started = time.monotonic()
            result = _migrate_past(tmp_path, url, "2s")
            took = time.monotonic() - started
            waited = _migrate_past(tmp_path, other_url, "2s")
        assert result.code == 0, result.stdout
        (taken,) = result.named("lock.taken_over")
        assert taken["holder"]["pid"] == pid
        assert took < 15, took
        assert history(admin) == [("0001", "applied", "transaction")]
        assert waited.code == 4 and not waited.named("lock.taken_over"), waited.stdout
    finally:
        admin.execute(f"DROP DATABASE {other_database} WITH (FORCE)")


def test_a_working_runner_is_never_taken_over(tmp_path: Path, url: str) -> None:
    """A release-runner holder that is running a statement is waited for, however long."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a ();\n"})
    with psycopg.connect(url, autocommit=True, application_name="release-runner") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (KEY,))
        worker = threading.Thread(target=_busy, args=(holder,))
        worker.start()
        time.sleep(1.5)  # the statement has run a while; what is asserted is that it is not idle
        result = _migrate_past(tmp_path, url, "1s")
        holder.cancel_safe()
        worker.join()
    assert result.code == 4, result.stdout
    assert not result.named("lock.taken_over")


def test_a_stale_lock_after_a_live_runner_can_reach_is_refused(tmp_path: Path) -> None:
    """Under twice the longest backoff (or, with --data-url, one probe on the replica plus a
    backoff), a second runner could end a working one: exit 2, naming the least value."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a ();\n"})
    for extra, floor in (
        (("--stale-lock-after", "2s"), "20s"),
        (("--stale-lock-after", "0s"), "20s"),
        (("--stale-lock-after", "20s", "--data-url", "postgresql://x/y", "--data-timeout", "30s"), "40s"),
    ):
        result = run_cli("migrate", "--migrations", str(tmp_path), *extra, url="postgresql://127.0.0.1:9/x")
        assert result.code == 2, result.stdout
        assert f"give {floor} or more" in result.stdout + result.stderr


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
