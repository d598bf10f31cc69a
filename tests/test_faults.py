"""Real faults during a release: lost connections (a proxy that cuts them, a terminated backend,
a restarted server), sessions holding locks, deadlocks, serialization failures, signals, the
time budget, a transaction-mode pooler and many runners at once."""

from __future__ import annotations

import shutil
import signal
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

from release_runner.run.scratch import LocalCluster
from tests.conftest import (
    PASSWORD,
    ROLE,
    Server,
    history,
    needs_server_binaries,
    run_cli,
    start_cli,
    table_exists,
    write,
)
from tests.proxy import Proxy


def _wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _running(admin: psycopg.Connection[Any], text: str) -> bool:
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'release-runner'"
        " AND state = 'active' AND query LIKE %s",
        (f"%{text}%",),
    ).fetchone()
    return bool(row and row[0])


def _waiting_on_lock(admin: psycopg.Connection[Any]) -> bool:
    """The runner's session is queued behind somebody else's lock."""
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'release-runner'"
        " AND wait_event_type = 'Lock'"
    ).fetchone()
    return bool(row and row[0])


def _events(stdout: str) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


SLOW = {
    "0001_a.sql": "CREATE TABLE a (id int);\n",
    "0002_slow.sql": "CREATE TABLE b (id int);\nSELECT pg_sleep(1.5);\n",
    "0003_c.sql": "CREATE TABLE c (id int);\n",
}


def test_backend_terminated_mid_migration_is_rerun_once(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """The server ends the session during a migration: its transaction rolled back, so after
    reconnecting and reading the history the runner runs it again; exit 0, each applied once."""
    write(tmp_path, SLOW)
    process = start_cli("migrate", "--migrations", str(tmp_path), url=url)
    _wait_for(lambda: _running(admin, "pg_sleep"))
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'release-runner' AND query LIKE '%pg_sleep%'"
    )
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    events = _events(stdout)
    retry = next(e for e in events if e["event"] == "migration.retry")
    assert retry["reason"] == "connection_lost" and retry["version"] == "0002"
    assert [r[0] for r in history(admin)] == ["0001", "0002", "0003"]
    assert table_exists(admin, "b")


def test_commit_whose_reply_is_lost_is_not_applied_twice(
    tmp_path: Path, proxy: Proxy, server: Server, database: str, admin: psycopg.Connection[Any]
) -> None:
    """The server commits the migration, but its reply never reaches the runner and the
    connection then dies: after reconnecting, the history row is there, so the runner logs
    `migration.already_applied` and does not run it again."""
    write(tmp_path, {**SLOW, "0002_slow.sql": "INSERT INTO a VALUES (1);\nSELECT pg_sleep(0.5);\n"})
    process = start_cli("migrate", "--migrations", str(tmp_path), url=server.url(database, proxy.port))
    _wait_for(lambda: _running(admin, "pg_sleep"))
    proxy.swallowing = True

    def committed() -> bool:
        row = admin.execute("SELECT count(*) FROM release_runner.history WHERE version = '0002'").fetchone()
        return row == (1,)

    _wait_for(committed)
    proxy.cut()
    proxy.swallowing = False
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    events = [e["event"] for e in _events(stdout)]
    assert "migration.already_applied" in events
    assert admin.execute("SELECT count(*) FROM a").fetchone() == (1,)
    assert [r[0] for r in history(admin)] == ["0001", "0002", "0003"]


def test_connection_cut_mid_migration_rolls_back_and_reruns(
    tmp_path: Path, proxy: Proxy, server: Server, database: str, admin: psycopg.Connection[Any]
) -> None:
    """The network drops during a migration: the server notices, rolls back; the runner
    reconnects, finds no history row and runs it again, once."""
    write(tmp_path, {**SLOW, "0002_slow.sql": "INSERT INTO a VALUES (1);\nSELECT pg_sleep(1.5);\n"})
    process = start_cli("migrate", "--migrations", str(tmp_path), url=server.url(database, proxy.port))
    _wait_for(lambda: _running(admin, "pg_sleep"))
    proxy.cut()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    retry = next(e for e in _events(stdout) if e["event"] == "migration.retry")
    assert (retry["version"], retry["reason"]) == ("0002", "connection_lost")
    assert admin.execute("SELECT count(*) FROM a").fetchone() == (1,)
    assert [r[0] for r in history(admin)] == ["0001", "0002", "0003"]


def test_a_refused_second_connection_while_probing_is_retried(
    tmp_path: Path, proxy: Proxy, server: Server, database: str, admin: psycopg.Connection[Any]
) -> None:
    """The runner's first connection works, its second (the pooler probe) is refused for a
    second: retried within the connect budget, the run completes (it crashed, exit 1)."""
    write(tmp_path, SLOW)
    proxy.accept_limit = 1
    process = start_cli("migrate", "--migrations", str(tmp_path), url=server.url(database, proxy.port))
    _wait_for(lambda: proxy.connections >= 1)
    time.sleep(1.0)
    proxy.accept_limit = None
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    assert [r[0] for r in history(admin)] == ["0001", "0002", "0003"]


def test_connect_is_retried_while_the_proxy_refuses(
    tmp_path: Path, proxy: Proxy, server: Server, database: str
) -> None:
    """Connections closed at once by a restarting proxy are retried until it lets them through."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a ();\n"})
    proxy.refusing = True
    threading.Timer(1.5, lambda: setattr(proxy, "refusing", False)).start()
    result = run_cli("migrate", "--migrations", str(tmp_path), url=server.url(database, proxy.port))
    assert result.code == 0, result.stdout
    assert len(result.named("db.connect_retry")) >= 1


def test_server_started_late_is_waited_for(tmp_path: Path, server: Server, database: str) -> None:
    """Nothing listens for the first seconds (a database still waking up): waited for."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a ();\n"})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    late: list[Proxy] = []
    timer = threading.Timer(3.0, lambda: late.append(Proxy(server.port, port=port)))
    timer.start()
    try:
        result = run_cli("migrate", "--migrations", str(tmp_path), url=server.url(database, port))
    finally:
        timer.join()
        for item in late:
            item.close()
    assert result.code == 0, result.stdout
    assert len(result.named("db.connect_retry")) >= 2


@needs_server_binaries
def test_server_restarted_mid_run_completes(tmp_path: Path) -> None:
    """A real server restart during a migration: reconnect within the budget and finish."""
    with LocalCluster(tcp=True) as cluster:
        url = f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"
        write(tmp_path, SLOW)
        process = start_cli("migrate", "--migrations", str(tmp_path), url=url)
        with psycopg.connect(cluster.url(), autocommit=True) as watcher:
            _wait_for(lambda: _running(watcher, "pg_sleep"))
        cluster.restart()
        stdout, stderr = process.communicate(timeout=90)
        assert process.returncode == 0, stdout + stderr
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            assert [r[0] for r in history(conn)] == ["0001", "0002", "0003"]


def test_connection_lost_while_waiting_for_the_runner_lock(
    tmp_path: Path, proxy: Proxy, server: Server, database: str, url: str
) -> None:
    """The connection dies while another runner holds the lock: reconnect, keep waiting, finish."""
    from release_runner.db.lock import RunnerLock

    write(tmp_path, {"0001_a.sql": "CREATE TABLE a ();\n"})
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (RunnerLock.of("release_runner").key,))
        process = start_cli("migrate", "--migrations", str(tmp_path), url=server.url(database, proxy.port))
        time.sleep(1.5)
        proxy.cut()
        time.sleep(0.5)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    events = [e["event"] for e in _events(stdout)]
    assert events.count("db.connected") == 2 and "lock.waiting" in events


def test_no_transaction_migration_lost_before_its_statement_is_retried(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """The connection dies while the `started` row of a no-transaction migration waits on a lock:
    its statement never left the runner, so it is safe to run after reconnecting."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a (id int);\n"})
    assert run_cli("migrate", "--migrations", str(tmp_path), url=url).code == 0
    write(tmp_path, {"0002_idx.sql": "CREATE INDEX CONCURRENTLY a_id ON a (id);\n"})
    blocker = psycopg.connect(url)
    blocker.execute("LOCK TABLE release_runner.history IN SHARE MODE")
    process = start_cli("migrate", "--migrations", str(tmp_path), url=url)

    _wait_for(lambda: _waiting_on_lock(admin))
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'release-runner' AND wait_event_type = 'Lock'"
    )
    blocker.rollback()
    blocker.close()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    retry = next(e for e in _events(stdout) if e["event"] == "migration.retry")
    assert (retry["version"], retry["reason"]) == ("0002", "connection_lost")
    assert history(admin) == [("0001", "applied", "transaction"), ("0002", "applied", "no-transaction")]


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
    events = _events(stdout)
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

    _wait_for(lambda: _waiting_on_lock(admin))
    other.execute("LOCK TABLE a IN ACCESS EXCLUSIVE MODE")  # waits until the runner is chosen
    other.commit()
    other.close()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    retry = next(e for e in _events(stdout) if e["event"] == "migration.retry")
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
    _wait_for(lambda: _running(admin, "pg_sleep"))
    admin.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    retry = next(e for e in _events(stdout) if e["event"] == "migration.retry")
    assert retry["sqlstate"] == "40001"
    assert admin.execute("SELECT n FROM counter").fetchone() == (11,)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_cancels_rolls_back_and_exits(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any], signum: int, code: int
) -> None:
    """SIGINT/SIGTERM during pg_sleep: the statement is cancelled on the server, the last line
    says interrupted, nothing of ours keeps running, and a rerun applies it."""
    write(
        tmp_path,
        {"0001_a.sql": "CREATE TABLE a ();\n", "0002_slow.sql": "CREATE TABLE b ();\nSELECT pg_sleep(3);\n"},
    )
    process = start_cli("migrate", "--migrations", str(tmp_path), url=url)
    _wait_for(lambda: _running(admin, "pg_sleep"))
    sent = time.monotonic()
    process.send_signal(signum)
    stdout, _ = process.communicate(timeout=30)
    assert time.monotonic() - sent < 5
    assert process.returncode == code
    last = _events(stdout)[-1]
    assert last["migration"].endswith("0002_slow.sql")
    assert (last["event"], last["status"], last["exit_code"], last["applied"]) == (
        "release.finished",
        "interrupted",
        code,
        1,
    )
    busy = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'release-runner%%'"
    ).fetchone()
    assert busy == (0,)
    assert not table_exists(admin, "b")
    assert [r[0] for r in history(admin)] == ["0001"]
    rerun = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert rerun.code == 0 and rerun.finished["applied"] == 1


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
        import os
        import pwd

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


def test_sigkill_leaves_nothing_running_on_the_server(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A runner killed outright cannot cancel anything; the server notices within seconds
    (client_connection_check_interval), rolls back and frees the runner lock for the next run."""
    write(tmp_path, {"0001_slow.sql": "CREATE TABLE s ();\nSELECT pg_sleep(60);\n"})
    process = start_cli("migrate", "--migrations", str(tmp_path), url=url)
    _wait_for(lambda: _running(admin, "pg_sleep"))
    process.kill()
    process.communicate(timeout=10)
    _wait_for(lambda: not _running(admin, "pg_sleep"), timeout=10)
    assert not table_exists(admin, "s")
    write(tmp_path, {"0001_slow.sql": "CREATE TABLE s ();\n"})
    rerun = run_cli("migrate", "--migrations", str(tmp_path), "--lock-wait", "5s", url=url)
    assert rerun.code == 0, rerun.stdout


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
