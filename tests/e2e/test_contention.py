"""Contention: table locks held by the app, deadlocks, serialization failures, many runners at
once, poolers, and the time budget."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import (
    PASSWORD,
    ROLE,
    Server,
    events_of,
    history,
    run_cli,
    running,
    start_cli,
    table_exists,
    wait_for,
    waiting_on_lock,
    write,
)


def test_lock_timeout_is_retried_and_blocker_named(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A session holding ACCESS SHARE: the ALTER times out (55P03), is retried, and succeeds
    once the blocker leaves; the blocker's pid appears in migration.waiting and migration.retry;
    a plain SELECT from a third session never waits longer than the lock timeout."""
    admin.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
    write(tmp_path, {"0001_alter.sql": "ALTER TABLE t ADD COLUMN note text;\n"})
    thread, pids = _hold(url, ["SELECT * FROM t"], release_after=4.0)
    process = start_cli(
        "migrate", "--migrations", str(tmp_path), "--lock-timeout", "1.5s", "--retries", "6", url=url
    )
    waits = []
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        started = time.monotonic()
        admin.execute("SELECT count(*) FROM t")
        waits.append(time.monotonic() - started)
        time.sleep(0.1)
    stdout, stderr = process.communicate(timeout=60)
    thread.join()
    assert process.returncode == 0, stdout + stderr
    events = events_of(stdout)
    retries = [e for e in events if e["event"] == "migration.retry"]
    assert retries and retries[0]["sqlstate"] == "55P03" and retries[0]["reason"] == "lock_timeout"
    waiting = [e for e in events if e["event"] == "migration.waiting"]
    assert waiting and waiting[0]["blockers"][0]["pid"] == pids[0]
    assert waiting[0]["blockers"][0]["application_name"] == "web-worker"
    assert retries[0]["blockers"][0]["pid"] == pids[0]
    assert max(waits) < 1.5 + 0.5
    assert [r[0] for r in history(admin)] == ["0001"]


def test_lock_never_released_fails_with_nothing_applied(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """The blocker never leaves: retries run out, exit 1 `failed`, the blocker named, nothing applied."""
    admin.execute("CREATE TABLE t (id int)")
    write(tmp_path, {"0001_alter.sql": "ALTER TABLE t ADD COLUMN note text;\n"})
    thread, pids = _hold(url, ["SELECT * FROM t"], release_after=10.0)
    result = run_cli(
        "migrate", "--migrations", str(tmp_path), "--lock-timeout", "1200ms", "--retries", "2", url=url
    )
    assert result.code == 1
    assert result.finished["status"] == "failed"
    assert f"pid {pids[0]} (web-worker)" in result.finished["error"]
    assert len(result.named("migration.retry")) == 1
    assert history(admin) == []
    columns = admin.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 't'"
    ).fetchone()
    assert columns == (1,)
    thread.join()


def test_deadlock_is_retried(tmp_path: Path, url: str, database: str, admin: psycopg.Connection[Any]) -> None:
    """A real deadlock in which the migration is the victim (40P01): rolled back, run again."""
    admin.execute("CREATE TABLE a (id int); CREATE TABLE b (id int)")
    # PostgreSQL aborts the session whose deadlock check runs first once the cycle exists: give
    # the runner 2 s (time for the other session to join the cycle even on a loaded machine)
    # and the other session far longer, so the migration is the victim every time.
    admin.execute(f"ALTER DATABASE {database} SET deadlock_timeout = '2s'")
    write(
        tmp_path,
        {"0001_both.sql": "LOCK TABLE a IN ACCESS EXCLUSIVE MODE;\nLOCK TABLE b IN ACCESS EXCLUSIVE MODE;\n"},
    )
    other = psycopg.connect(url, application_name="other")
    other.execute("SET deadlock_timeout = '60s'")
    other.execute("LOCK TABLE b IN ACCESS EXCLUSIVE MODE")
    process = start_cli("migrate", "--migrations", str(tmp_path), "--lock-timeout", "20s", url=url)

    wait_for(lambda: waiting_on_lock(admin))
    other.execute("LOCK TABLE a IN ACCESS EXCLUSIVE MODE")  # waits until the runner is chosen
    other.commit()
    other.close()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    retry = next(e for e in events_of(stdout) if e["event"] == "migration.retry")
    assert (retry["sqlstate"], retry["reason"]) == ("40P01", "deadlock")
    assert [r[0] for r in history(admin)] == ["0001"]


def test_serialization_failure_is_retried(tmp_path: Path, url: str, admin: psycopg.Connection[Any]) -> None:
    """A repeatable-read migration whose row changed under it (40001): rolled back, run again."""
    admin.execute("CREATE TABLE counter (id int PRIMARY KEY, n int); INSERT INTO counter VALUES (1, 0)")
    write(
        tmp_path,
        {
            "0001_bump.sql": "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ;\n"
            "SELECT n FROM counter;\nSELECT pg_sleep(1);\nUPDATE counter SET n = n + 10 WHERE id = 1;\n"
        },
    )
    process = start_cli("migrate", "--migrations", str(tmp_path), url=url)
    wait_for(lambda: running(admin, "pg_sleep"))
    admin.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    retry = next(e for e in events_of(stdout) if e["event"] == "migration.retry")
    assert retry["sqlstate"] == "40001"
    assert admin.execute("SELECT n FROM counter").fetchone() == (11,)


def test_sixteen_runners_on_fifty_migrations(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """Sixteen runners at once: every migration applied exactly once, all exit 0."""
    write(tmp_path, {f"{i:04d}_t{i}.sql": f"CREATE TABLE t{i} (id int);\n" for i in range(1, 51)})
    processes = [start_cli("migrate", "--migrations", str(tmp_path), url=url) for _ in range(16)]
    outputs = [p.communicate(timeout=180) for p in processes]
    assert [p.returncode for p in processes] == [0] * 16, [o[0][-500:] for o in outputs if o]
    assert sum(out.count('"migration.applied"') for out, _ in outputs) == 50
    assert len(history(admin)) == 50


def test_transaction_pooler_is_refused_session_pooler_works(
    tmp_path: Path,
    server: Server,
    database: str,
    pgbouncer: Callable[[str], int],
    admin: psycopg.Connection[Any],
) -> None:
    """PgBouncer in transaction mode is refused naming DIRECT_DATABASE_URL; session mode works."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a ();\n"})
    pooled = run_cli(
        "migrate", "--migrations", str(tmp_path), url=server.url(database, pgbouncer("transaction"))
    )
    assert pooled.code == 2
    assert "DIRECT_DATABASE_URL" in pooled.finished["error"]
    assert history(admin) == []
    session = run_cli(
        "migrate", "--migrations", str(tmp_path), url=server.url(database, pgbouncer("session"))
    )
    assert session.code == 0, session.stdout
    assert [r[0] for r in history(admin)] == ["0001"]


def test_an_exhausted_session_pool_is_reported_as_such(
    tmp_path: Path, server: Server, database: str, pgbouncer: Callable[[str, str], int]
) -> None:
    """A PgBouncer session pool of one, already taken: the runner is told the pool is exhausted
    (exit 4), not that it lost its connection."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a ();\n"})
    port = pgbouncer("session", "default_pool_size = 1\nquery_wait_timeout = 2\n")
    with psycopg.connect(server.url(database, port), autocommit=True) as holder:
        holder.execute("SELECT 1")  # session mode: the pool's one server connection is its
        result = run_cli("migrate", "--migrations", str(tmp_path), url=server.url(database, port))
    assert result.code == 4, result.stdout
    assert "pool" in result.finished["error"] and "lost the connection" not in result.finished["error"]


def test_time_budget(tmp_path: Path, url: str, admin: psycopg.Connection[Any]) -> None:
    """A migration still running when the budget is spent is cancelled and rolled back (exit 4,
    the summary says how far it got); a spent budget starts nothing."""
    write(
        tmp_path,
        {"0001_a.sql": "CREATE TABLE a ();\n", "0002_slow.sql": "CREATE TABLE b ();\nSELECT pg_sleep(20);\n"},
    )
    started = time.monotonic()
    result = run_cli("migrate", "--migrations", str(tmp_path), "--time-budget", "2s", url=url)
    assert time.monotonic() - started < 10
    assert result.code == 4
    assert (result.finished["status"], result.finished["applied"], result.finished["pending"]) == (
        "unreachable",
        1,
        1,
    )
    assert "time budget" in result.finished["error"]
    assert [r[0] for r in history(admin)] == ["0001"]
    assert not table_exists(admin, "b")
    spent = run_cli("migrate", "--migrations", str(tmp_path), "--time-budget", "0", url=url)
    assert spent.code == 4 and spent.finished["applied"] == 0 and not spent.named("migration.started")


def test_time_budget_during_a_concurrent_index_asks_for_repair(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A no-transaction statement cancelled by the budget cannot be rolled back: exit 4, and the
    message says how to resolve it."""
    admin.execute("CREATE TABLE t (id int)")
    write(tmp_path, {"0001_idx.sql": "CREATE INDEX CONCURRENTLY t_id ON t (id);\n"})
    with psycopg.connect(url) as blocker:  # an open write transaction on t makes the build wait
        blocker.execute("INSERT INTO t VALUES (1)")
        result = run_cli(
            "migrate", "--migrations", str(tmp_path), "--time-budget", "2s", "--lock-timeout", "30s", url=url
        )
    assert result.code == 4
    assert "repair --forget 0001" in result.finished["error"]
    assert "DROP INDEX CONCURRENTLY IF EXISTS t_id" in result.finished["error"]
    assert history(admin) == [("0001", "failed", "no-transaction")]


def _hold(url: str, statements: list[str], release_after: float | None) -> tuple[threading.Thread, list[int]]:
    """Another application's session: runs `statements` in a transaction and keeps it open."""
    pids: list[int] = []
    ready = threading.Event()

    def run() -> None:
        with psycopg.connect(url, application_name="web-worker") as conn:
            pids.append(conn.info.backend_pid)
            for statement in statements:
                conn.execute(statement)
            ready.set()
            time.sleep(release_after if release_after is not None else 12)
            conn.rollback()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    return thread, pids


@pytest.fixture
def pgbouncer(server: Server) -> Iterator[Callable[..., int]]:
    """Start PgBouncer (Debian package) in front of the test cluster, as an unprivileged user."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)")
    started: list[subprocess.Popen[bytes]] = []
    directory = Path(tempfile.mkdtemp(prefix="rr-pgbouncer-"))

    def start(mode: str, extra: str = "") -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        (directory / "users.txt").write_text(f'"{ROLE}" "{PASSWORD}"\n')
        (directory / f"{mode}.ini").write_text(
            f"[databases]\n* = host=127.0.0.1 port={server.port}\n"
            f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n"
            f"auth_type = scram-sha-256\nauth_file = {directory}/users.txt\n"
            f"pool_mode = {mode}\nunix_socket_dir =\nlogfile = {directory}/{mode}.log\n{extra}"
        )
        user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if user:
            os.chown(directory, user.pw_uid, user.pw_gid)
            for item in directory.iterdir():
                os.chown(item, user.pw_uid, user.pw_gid)
        process = subprocess.Popen(
            [binary, str(directory / f"{mode}.ini")],
            user=user.pw_uid if user else None,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return port
            except OSError:
                time.sleep(0.1)
        pytest.fail("pgbouncer did not start")

    yield start
    for process in started:
        process.terminate()
        process.wait(10)
    shutil.rmtree(directory, ignore_errors=True)
