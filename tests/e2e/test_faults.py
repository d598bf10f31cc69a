"""Real faults during a release: lost connections (a proxy that cuts them, a terminated backend,
a restarted server), sessions holding locks, deadlocks, serialization failures, signals, the
time budget, a transaction-mode pooler and many runners at once."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from release_runner.run.scratch import LocalCluster
from tests.conftest import (
    Server,
    events_of,
    history,
    needs_server_binaries,
    run_cli,
    running,
    start_cli,
    table_exists,
    wait_for,
    waiting_on_lock,
    write,
)
from tests.proxy import Proxy

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
    wait_for(lambda: running(admin, "pg_sleep"))
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'release-runner' AND query LIKE '%pg_sleep%'"
    )
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    events = events_of(stdout)
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
    wait_for(lambda: running(admin, "pg_sleep"))
    proxy.swallowing = True

    def committed() -> bool:
        row = admin.execute("SELECT count(*) FROM release_runner.history WHERE version = '0002'").fetchone()
        return row == (1,)

    wait_for(committed)
    proxy.cut()
    proxy.swallowing = False
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    events = [e["event"] for e in events_of(stdout)]
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
    wait_for(lambda: running(admin, "pg_sleep"))
    proxy.cut()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    retry = next(e for e in events_of(stdout) if e["event"] == "migration.retry")
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
    wait_for(lambda: proxy.connections >= 1)
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
            wait_for(lambda: running(watcher, "pg_sleep"))
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
    events = [e["event"] for e in events_of(stdout)]
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

    wait_for(lambda: waiting_on_lock(admin))
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'release-runner' AND wait_event_type = 'Lock'"
    )
    blocker.rollback()
    blocker.close()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    retry = next(e for e in events_of(stdout) if e["event"] == "migration.retry")
    assert (retry["version"], retry["reason"]) == ("0002", "connection_lost")
    assert history(admin) == [("0001", "applied", "transaction"), ("0002", "applied", "no-transaction")]


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
    wait_for(lambda: running(admin, "pg_sleep"))
    sent = time.monotonic()
    process.send_signal(signum)
    stdout, _ = process.communicate(timeout=30)
    assert time.monotonic() - sent < 5
    assert process.returncode == code
    last = events_of(stdout)[-1]
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


def test_sigkill_leaves_nothing_running_on_the_server(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A runner killed outright cannot cancel anything; the server notices within seconds
    (client_connection_check_interval), rolls back and frees the runner lock for the next run."""
    write(tmp_path, {"0001_slow.sql": "CREATE TABLE s ();\nSELECT pg_sleep(60);\n"})
    process = start_cli("migrate", "--migrations", str(tmp_path), url=url)
    wait_for(lambda: running(admin, "pg_sleep"))
    process.kill()
    process.communicate(timeout=10)
    wait_for(lambda: not running(admin, "pg_sleep"), timeout=10)
    assert not table_exists(admin, "s")
    write(tmp_path, {"0001_slow.sql": "CREATE TABLE s ();\n"})
    rerun = run_cli("migrate", "--migrations", str(tmp_path), "--lock-wait", "5s", url=url)
    assert rerun.code == 0, rerun.stdout
