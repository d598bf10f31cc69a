"""A failover in the middle of a run, on a real primary and streaming standby started here:
the standby stops receiving (it lags), the runner commits a migration on the primary, the
primary stops while the next one runs and the standby is promoted. The runner reconnects
through its multi-host URL, finds that the new primary lacks what it committed, says so by
name (`migration.lost`) and applies it again: every migration once, the summary true."""

from __future__ import annotations

import os
import random
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from release_runner.run.scratch import LocalCluster
from tests.conftest import events_of, needs_server_binaries, start_cli, wait_for, write


def _one(url: str, query: str) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
        return row[0] if row else None


@pytest.fixture
def pair() -> Iterator[tuple[LocalCluster, LocalCluster]]:
    """A primary and its streaming standby, both on TCP."""
    primary, standby = LocalCluster(tcp=True), LocalCluster(tcp=True)
    try:
        primary.start()
        copied = standby.tool(
            "pg_basebackup",
            *("-D", str(standby.data), "-h", str(primary.directory), "-p", str(primary.port)),
            *("-U", "postgres", "-R", "-X", "stream"),
        )
        assert copied.returncode == 0, copied.stderr
        standby.launch()
        wait_for(lambda: bool(_one(standby.url(), "SELECT count(*) FROM pg_stat_wal_receiver")))
        yield primary, standby
    finally:
        for cluster in (primary, standby):
            cluster.stop("immediate")
            cluster.remove()


def _lagging(primary: LocalCluster, standby: LocalCluster, url: str, directory: Path) -> None:
    """0001 applied and replayed on the standby, which then stops receiving."""
    write(directory, {"0001_counter.sql": "CREATE TABLE counter (version text NOT NULL);\n"})
    first = start_cli("migrate", "--no-verify", "--migrations", str(directory), url=url)
    assert first.wait(60) == 0, first.communicate()
    lsn = _one(primary.url(), "SELECT pg_current_wal_lsn()::text")
    wait_for(lambda: bool(_one(standby.url(), f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'")))
    with psycopg.connect(standby.url(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET primary_conninfo = ''")
        conn.execute("SELECT pg_reload_conf()")
    wait_for(lambda: not _one(standby.url(), "SELECT count(*) FROM pg_stat_wal_receiver"))


@needs_server_binaries
def test_a_commit_lost_in_a_failover_is_named_and_applied_again(
    tmp_path: Path, pair: tuple[LocalCluster, LocalCluster]
) -> None:
    primary, standby = pair
    url = (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/postgres"
        "?target_session_attrs=read-write"
    )
    directory = tmp_path
    _lagging(primary, standby, url, directory)
    write(
        directory,
        {
            "0002_lost.sql": "CREATE TABLE lost (id int);\nINSERT INTO lost VALUES (1);\n",
            "0003_slow.sql": "SELECT pg_sleep(4);\nCREATE TABLE slow (id int);\n",
            "0004_after.sql": "CREATE TABLE after_failover (id int);\n",
        },
    )
    run = start_cli("migrate", "--no-verify", "--migrations", str(directory), url=url)
    wait_for(
        lambda: bool(
            _one(
                primary.url(),
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(4)%' AND pid <> pg_backend_pid()",
            )
        )
    )
    primary.stop("immediate")
    promoted = standby.tool("pg_ctl", "promote", "-w", "-D", str(standby.data))
    assert promoted.returncode == 0, promoted.stderr
    stdout, stderr = run.communicate(timeout=120)
    events = events_of(stdout)
    finished = events[-1]
    assert run.returncode == 0, stdout[-3000:] + stderr
    assert [e["version"] for e in events if e["event"] == "migration.lost"] == ["0002"]
    assert finished["applied"] == 3 and finished["status"] == "ok", finished
    rows = _one(standby.url(), "SELECT string_agg(version, ',' ORDER BY version) FROM release_runner.history")
    assert rows == "0001,0002,0003,0004"
    assert _one(standby.url(), "SELECT count(*) FROM lost") == 1


TRIALS = int(os.environ.get("RELEASE_RUNNER_FAILOVER_TRIALS", "2"))
SEED = int(os.environ.get("RELEASE_RUNNER_FAULT_SEED", str(secrets.randbits(32))))
COUNTED = [f"{n:04d}" for n in range(2, 7)]


@needs_server_binaries
@pytest.mark.parametrize("trial", range(TRIALS))
def test_failover_at_a_random_moment(
    tmp_path: Path, pair: tuple[LocalCluster, LocalCluster], trial: int
) -> None:
    """The failover trial kind of the randomized fault tests: the primary stops at a random
    moment of a run over a lagging standby. A run it cut short ends with a summary that matches
    the new primary's history; a rerun ends green; every migration is there exactly once."""
    primary, standby = pair
    url = (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/postgres"
        "?target_session_attrs=read-write"
    )
    _lagging(primary, standby, url, tmp_path)
    write(
        tmp_path,
        {f"{v}_step.sql": f"INSERT INTO counter VALUES ('{v}');\nSELECT pg_sleep(0.3);\n" for v in COUNTED},
    )
    delay = random.Random(SEED + trial).uniform(0.1, 2.0)
    run = start_cli("migrate", "--no-verify", "--migrations", str(tmp_path), url=url)
    time.sleep(delay)  # the random moment of the fault, not a wait for a state
    during = run.poll() is None
    primary.stop("immediate")
    assert standby.tool("pg_ctl", "promote", "-w", "-D", str(standby.data)).returncode == 0
    stdout, stderr = run.communicate(timeout=120)
    story = (
        f"seed {SEED}, trial {trial}: failover at {delay:.2f}s ({'during' if during else 'after'} the run)"
    )
    finished = events_of(stdout)[-1]
    assert finished["event"] == "release.finished" and "Traceback" not in stderr, story + stderr
    if during:
        assert run.returncode == 0, f"{story}: {stdout[-3000:]}"
        ours = _one(
            standby.url(),
            f"SELECT count(*) FROM release_runner.history WHERE run_id = '{finished['run_id']}'",
        )
        assert finished["applied"] == ours, f"{story}: {finished}"
    rerun = start_cli("migrate", "--no-verify", "--migrations", str(tmp_path), url=url)
    assert rerun.wait(60) == 0, f"{story}: {rerun.communicate()}"
    counts = _one(
        standby.url(),
        "SELECT string_agg(version || ':' || n, ',' ORDER BY version) FROM (SELECT version, count(*) n FROM counter GROUP BY version) c",
    )
    assert counts == ",".join(f"{v}:1" for v in COUNTED), f"{story}: {counts}"
