"""Randomized faults: a signal, a cut connection or SIGKILL at a random moment of a release,
then a normal rerun, many times. Each trial checks what a user would: nothing lost or applied
twice (a counter table shows doubling), the faulted run's summary matches the history it left,
the rerun ends green (after a human's documented fix only where an index build was cut and
left an INVALID index, which must be named), nothing stays locked or running.

RELEASE_RUNNER_FAULT_TRIALS sets the number of trials (default 32) and
RELEASE_RUNNER_FAULT_SEED the seed (printed on failure)."""

from __future__ import annotations

import os
import random
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from release_runner.db import connection
from release_runner.db.history import HistoryStore
from tests.conftest import Server, events_of, run_cli, start_cli, write
from tests.proxy import Proxy

TRIALS = int(os.environ.get("RELEASE_RUNNER_FAULT_TRIALS", "32"))
SEED = int(os.environ.get("RELEASE_RUNNER_FAULT_SEED", str(secrets.randbits(32))))
FAULTS = ("SIGTERM", "SIGINT", "SIGKILL", "cut")

FILES = {
    "0001_counter.sql": (
        "CREATE TABLE counter (version text NOT NULL);\nINSERT INTO counter VALUES ('0001');\n"
        # An index expression that takes 50 ms a row, so that faults land inside the build too
        # (IMMUTABLE so that it may be indexed: a trick for tests only).
        "CREATE FUNCTION slow_key(text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS\n"
        "$$ BEGIN PERFORM pg_sleep(0.05); RETURN $1; END $$;\n"
    ),
    "0002_a.sql": "INSERT INTO counter VALUES ('0002');\nSELECT pg_sleep(0.06);\nCREATE TABLE a (id int);\n",
    "0003_b.sql": "INSERT INTO counter VALUES ('0003');\nCREATE TABLE b (id int);\nSELECT pg_sleep(0.04);\n",
    "0004_idx.sql": "CREATE INDEX CONCURRENTLY counter_version ON counter (slow_key(version));\n",
    "0005_c.sql": "SELECT pg_sleep(0.05);\nINSERT INTO counter VALUES ('0005');\nCREATE TABLE c (id int);\n",
    "0006_d.sql": "INSERT INTO counter VALUES ('0006');\nSELECT pg_sleep(0.03);\n",
}
COUNTED = ["0001", "0002", "0003", "0005", "0006"]
# The large-file kind of trial: 0003 is a data load over 1 MiB, read by the large-file lexer,
# whose last row holds a dollar quote with `$$;` inside.
LOAD_ROWS = 25000
FILES_LARGE = {
    **FILES,
    "0003_b.sql": "INSERT INTO counter VALUES ('0003');\nCREATE TABLE b (id int, v text);\n"
    "INSERT INTO b VALUES "
    + ",\n".join(f"({i}, '{'x' * 40}')" for i in range(LOAD_ROWS))
    + ", (-1, $q$x$$;y$q$);\n",
}
KINDS = {"small": FILES, "large": FILES_LARGE}


def _one(conn: psycopg.Connection[Any], query: str, *params: Any) -> Any:
    row = conn.execute(query, params or None).fetchone()
    return row[0] if row else None


def _trial(rng: random.Random, tmp_path: Path, server: Server, proxy: Proxy, trial: int) -> str:
    name = f"fault_{trial}_{secrets.token_hex(3)}"
    connection.create_database(server.admin, name)
    try:
        with psycopg.connect(connection.with_dbname(server.admin, name), autocommit=True) as admin:
            return _fault_and_rerun(rng, tmp_path, server, proxy, name, admin)
    finally:
        connection.drop_database(server.admin, name)


def _fault_and_rerun(
    rng: random.Random,
    tmp_path: Path,
    server: Server,
    proxy: Proxy,
    name: str,
    admin: psycopg.Connection[Any],
) -> str:
    """One trial: a fault at a random moment of a migrate, then reruns until it is done; every
    migration must have been applied exactly once and nothing left behind."""
    fault, kind = rng.choice(FAULTS), rng.choice(sorted(KINDS))
    delay = rng.uniform(0.05, 1.2)
    story = f"{fault} at {delay:.2f}s ({kind} files)"
    tmp_path = tmp_path / kind
    process = start_cli("migrate", "--migrations", str(tmp_path), url=server.url(name, proxy.port))
    time.sleep(delay)  # the random moment of the fault, not a wait for something to happen
    if fault == "cut":
        proxy.cut()
    else:
        process.send_signal(getattr(signal, fault))
    stdout, stderr = process.communicate(timeout=60)
    expected_codes = {"SIGTERM": (0, 143), "SIGINT": (0, 130), "SIGKILL": (0, -9), "cut": (0,)}[fault]
    assert process.returncode in expected_codes, f"{story}: exit {process.returncode}\n{stdout}{stderr}"
    if fault != "SIGKILL":
        _summary_matches_history(story, stdout, stderr, admin)
    story = _rerun_until_done(story, tmp_path, server, name, admin)
    counts = dict(admin.execute("SELECT version, count(*) FROM counter GROUP BY version").fetchall())
    assert counts == {version: 1 for version in COUNTED}, f"{story}: counter {counts}"
    statuses = admin.execute("SELECT version, status FROM release_runner.history ORDER BY version").fetchall()
    assert statuses == [(f"000{n}", "applied") for n in range(1, 7)], f"{story}: {statuses}"
    assert _one(admin, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 0, story
    assert _one(admin, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0, story
    if kind == "large":
        loaded = admin.execute("SELECT count(*), max(v) FILTER (WHERE id = -1) FROM b").fetchone()
        assert loaded == (LOAD_ROWS + 1, "x$$;y"), f"{story}: {loaded}"
    return story


def _summary_matches_history(story: str, stdout: str, stderr: str, admin: psycopg.Connection[Any]) -> None:
    """No traceback, `release.finished` last, and its `applied` is the rows its run wrote."""
    assert "Traceback" not in stderr, f"{story}: {stderr}"
    summary = events_of(stdout)[-1]
    assert summary["event"] == "release.finished", f"{story}: {stdout}"
    recorded = (
        _one(
            admin,
            "SELECT count(*) FROM release_runner.history WHERE run_id = %s AND status = 'applied'",
            summary["run_id"],
        )
        if HistoryStore("release_runner").exists(admin)
        else 0
    )
    assert summary["applied"] == recorded, f"{story}: summary {summary} vs {recorded} rows"


def _rerun_until_done(
    story: str, tmp_path: Path, server: Server, name: str, admin: psycopg.Connection[Any]
) -> str:
    """Run migrate again; an index build cut short may stop it, and then its message must say
    what to do, and doing that must work."""
    rerun = run_cli(
        "migrate", "--migrations", str(tmp_path), "--stale-lock-after", "20s", url=server.url(name)
    )
    if rerun.code == 5:
        error = rerun.finished["error"]
        assert "DROP INDEX CONCURRENTLY IF EXISTS counter_version" in error, f"{story}: {error}"
        assert (
            _one(admin, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'counter_version'::regclass")
            is False
        )
        admin.execute("DROP INDEX counter_version")
        assert "`release-runner repair --forget 0004 --reason 'dropped the invalid index'`" in error, error
        repaired = run_cli(
            "repair",
            "--forget",
            "0004",
            "--reason",
            "dropped the invalid index",
            "--migrations",
            str(tmp_path),
            url=server.url(name),
        )
        assert repaired.code == 0, repaired.stdout
        rerun = run_cli("migrate", "--migrations", str(tmp_path), url=server.url(name))
        story += ", INVALID index repaired"
    assert rerun.code == 0, f"{story}: rerun exit {rerun.code}\n{rerun.stdout}"
    return story


@pytest.mark.db
def test_random_faults_never_lose_double_or_misreport(tmp_path: Path, server: Server, proxy: Proxy) -> None:
    """TRIALS random faults, each followed by a rerun: every check holds in every trial."""
    for kind, files in KINDS.items():
        write(tmp_path / kind, files)
    rng = random.Random(SEED)
    stories = []
    started = time.monotonic()
    for trial in range(TRIALS):
        try:
            stories.append(_trial(rng, tmp_path, server, proxy, trial))
        except AssertionError as error:
            raise AssertionError(f"seed {SEED}, trial {trial}: {error}") from None
    print("\n".join(stories))  # shown with -s: which faults hit where
    assert len(stories) == TRIALS
    assert {story.split(" ")[0] for story in stories} == set(FAULTS), f"seed {SEED}: {stories}"
    assert all(any(f"({kind} files)" in story for story in stories) for kind in KINDS), stories
    assert time.monotonic() - started < 240
