"""Fleets on real servers: many databases and schemas in one release, each a complete run; the
faults of a real fleet (bad data, a closed port, a busy lock, drift, an edited history, a
failing canary) named target by target, and a rerun that converges."""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from release_runner.db import connection
from release_runner.db.lock import RunnerLock
from tests.conftest import CLI, PASSWORD, ROOT, Run, Server, cli_env, events_of, run_cli, write

FIRST = {
    "0001_accounts.sql": "CREATE TABLE accounts (id int PRIMARY KEY, email text);\n",
    "0002_orders.sql": "CREATE TABLE orders (id int PRIMARY KEY, account int NOT NULL);\n",
}
SECOND = {"0003_email_unique.sql": "CREATE UNIQUE INDEX accounts_email ON accounts (email);\n"}


@dataclass
class Fleet:
    """Databases and a control database with tenant schemas, on the test server."""

    server: Server
    control: str
    databases: list[str] = field(default_factory=list)

    def admin(self, database: str, schema: str | None = None) -> psycopg.Connection[Any]:
        url = connection.with_dbname(self.server.admin, database)
        if schema:
            url = connection.with_search_path(url, schema)
        return psycopg.connect(url, autocommit=True)

    def database(self, name: str) -> str:
        real = f"f_{secrets.token_hex(4)}_{name}"
        connection.create_database(self.server.admin, real)
        self.databases.append(real)
        return real


@pytest.fixture
def fleet(server: Server) -> Iterator[Fleet]:
    found = Fleet(server, "")
    found.control = found.database("control")
    yield found
    for name in found.databases:
        connection.drop_database(server.admin, name)


def _query(rows: Sequence[tuple[str, str | None, str | None, str | None]]) -> str:
    """A --targets-query returning these (name, url, database, schema) rows, in order."""
    values = ", ".join(
        "(" + ", ".join("NULL" if v is None else "'" + v.replace("'", "''") + "'" for v in row) + f", {i})"
        for i, row in enumerate(rows)
    )
    return f"SELECT name, url, database, schema FROM (VALUES {values}) AS t(name, url, database, schema, n) ORDER BY n"


def _run(fleet: Fleet, directory: Path, query: str, *extra: str) -> Run:
    env = cli_env(fleet.server.url(fleet.control))
    result = run_cli("migrate", "--migrations", str(directory), "--targets-query", query, *extra, env=env)
    assert PASSWORD not in result.stdout + result.stderr
    return result


def _ended(result: Run) -> dict[str, tuple[str, int]]:
    return {e["target"]: (e["status"], e["exit_code"]) for e in result.named("target.finished")}


def _versions(conn: psycopg.Connection[Any], history_schema: str = "release_runner") -> list[str]:
    rows = conn.execute(f'SELECT version FROM "{history_schema}".history ORDER BY version').fetchall()
    return [row[0] for row in rows]


def test_a_fleet_names_each_failure_and_a_rerun_converges(
    tmp_path: Path, fleet: Fleet, server: Server
) -> None:
    """Thirteen targets, databases and schemas: bad data (seen by the data preflight), an object
    in the way (a migration that fails as it runs), a closed port, a lock held past
    --lock-wait, drift and an edited history each end their own target with their own cause and
    exit code; every other target is at head; the fleet exits with the most serious code; a
    rerun after the fixes converges and leaves the rest as they were."""
    names = ["canary", "a", "b", "dirty", "broken", "busy", "drifted", "edited"]
    databases = {name: fleet.database(name) for name in names}
    with fleet.admin(fleet.control) as conn:
        for tenant in ("t1", "t2", "t3", "t4"):
            conn.execute(f"CREATE SCHEMA {tenant}")
    rows: list[tuple[str, str | None, str | None, str | None]] = [
        (name, None, databases[name], None) for name in names
    ]
    rows += [(tenant, None, None, tenant) for tenant in ("t1", "t2", "t3", "t4")]
    rows.append(("closed", f"postgresql://runner:{PASSWORD}@127.0.0.1:1/x", None, None))
    query = _query(rows)
    directory = write(tmp_path / "sql", FIRST)
    assert run_cli("snapshot", "--migrations", str(directory), "--scratch-url", server.admin).code == 0

    first = _run(fleet, directory, _query([r for r in rows if r[0] != "closed"]))
    assert first.code == 0, first.stdout[-3000:]
    assert first.finished["targets"]["ok"] == 12 and first.finished["applied"] == 24
    _break(fleet, databases)
    write(directory, SECOND)
    assert run_cli("snapshot", "--migrations", str(directory), "--scratch-url", server.admin).code == 0
    holder = fleet.admin(databases["busy"])
    holder.execute("SELECT pg_advisory_lock(%s)", (RunnerLock.of("release_runner").key,))
    second = _run(fleet, directory, query, "--lock-wait", "1s", "--connect-timeout", "3")
    ended = _ended(second)
    assert ended["dirty"] == ("refused", 5)  # the data preflight saw the duplicates
    assert ended["broken"] == ("failed", 1)
    assert ended["closed"] == ("unreachable", 4) and ended["busy"] == ("unreachable", 4)
    assert ended["drifted"] == ("drift", 3) and ended["edited"] == ("refused", 5)
    for name in ("canary", "a", "b", "t1", "t2", "t3", "t4"):
        assert ended[name] == ("ok", 0), (name, second.stdout[-3000:])
    assert second.code == 1 and second.finished["status"] == "failed"
    assert set(second.finished["not_ok"]) == {"dirty", "broken", "closed", "busy", "drifted", "edited"}
    errors = {e["target"]: e["error"] for e in second.named("target.finished") if e.get("error")}
    assert "data preflight" in errors["dirty"] and "42P07" in errors["broken"]
    assert "runner lock" in errors["busy"]
    for tenant in ("t1", "t2", "t3", "t4"):
        with fleet.admin(fleet.control) as conn:
            assert _versions(conn, f"release_runner_{tenant}") == ["0001", "0002", "0003"]

    holder.close()
    with fleet.admin(databases["dirty"]) as conn:
        conn.execute("DELETE FROM accounts WHERE id = 2")
    with fleet.admin(databases["broken"]) as conn:
        conn.execute("DROP INDEX accounts_email")
    third = _run(fleet, directory, query, "--lock-wait", "1s", "--connect-timeout", "3")
    ended = _ended(third)
    assert ended["dirty"] == ("ok", 0) and ended["busy"] == ("ok", 0) and ended["broken"] == ("ok", 0)
    assert ended["drifted"] == ("drift", 3) and ended["edited"] == ("refused", 5)
    assert ended["closed"] == ("unreachable", 4) and third.code == 3
    assert third.finished["applied"] == 3  # dirty's, broken's and busy's 0003: the rest were at head
    with fleet.admin(databases["edited"]) as conn:
        assert _versions(conn) == ["0001", "0002"]


def _break(fleet: Fleet, databases: dict[str, str]) -> None:
    """Bad data on one target, an object in the way on another, drift on a third, an edited
    history on a fourth."""
    with fleet.admin(databases["dirty"]) as conn:
        conn.execute("INSERT INTO accounts VALUES (1, 'x@example.com'), (2, 'x@example.com')")
    with fleet.admin(databases["broken"]) as conn:
        conn.execute("CREATE INDEX accounts_email ON accounts (id)")
    with fleet.admin(databases["drifted"]) as conn:
        conn.execute("ALTER TABLE orders DROP COLUMN account")
    with fleet.admin(databases["edited"]) as conn:
        conn.execute("UPDATE release_runner.history SET checksum = 'edited' WHERE version = '0001'")


def test_a_failing_canary_stops_the_fleet(tmp_path: Path, fleet: Fleet, server: Server) -> None:
    """The canary runs alone first; when it fails, no other target starts (all `skipped`), and
    they are untouched."""
    names = ["canary", "a", "b", "c"]
    databases = {name: fleet.database(name) for name in names}
    query = _query([(name, None, databases[name], None) for name in names])
    directory = write(tmp_path / "sql", FIRST)
    assert _run(fleet, directory, query, "--no-verify").code == 0
    with fleet.admin(databases["canary"]) as conn:
        conn.execute("INSERT INTO accounts VALUES (1, 'x@example.com'), (2, 'x@example.com')")
    write(directory, SECOND)
    result = _run(fleet, directory, query, "--no-verify", "--parallel", "2")
    assert result.code == 5
    assert _ended(result) == {
        "canary": ("refused", 5),
        "a": ("skipped", 0),
        "b": ("skipped", 0),
        "c": ("skipped", 0),
    }
    assert result.finished["targets"]["skipped"] == 3
    for name in ("a", "b", "c"):
        with fleet.admin(databases[name]) as conn:
            assert _versions(conn) == ["0001", "0002"]


def test_max_failures_and_shards(tmp_path: Path, fleet: Fleet, server: Server) -> None:
    """--max-failures stops starting targets once reached; --shard I/N runs only its share,
    and the shards of a fleet cover it exactly once."""
    names = [f"s{i}" for i in range(6)]
    databases = {name: fleet.database(name) for name in names}
    rows = [(name, None, databases[name], None) for name in names]
    query = _query([("bad", "postgresql://runner:x@127.0.0.1:1/x", None, None), *rows])
    directory = write(tmp_path / "sql", FIRST)
    stopped = _run(
        fleet,
        directory,
        query,
        "--canary",
        "0",
        "--parallel",
        "1",
        "--max-failures",
        "1",
        "--connect-timeout",
        "2",
    )
    assert stopped.code == 4 and stopped.finished["targets"]["skipped"] == 6
    seen: list[str] = []
    for shard in ("1/3", "2/3", "3/3"):
        result = _run(fleet, directory, _query(rows), "--shard", shard, "--no-verify")
        assert result.code == 0, result.stdout[-2000:]
        seen += [e["target"] for e in result.named("target.finished")]
    assert sorted(seen) == sorted(names)


def test_fleet_usage_errors_touch_nothing(tmp_path: Path, fleet: Fleet, server: Server) -> None:
    """A malformed targets file, an unset variable, or a file-only preflight error ends the
    run (exit 2, exit 5) before any target is touched; baseline and repair refuse --targets."""
    database = fleet.database("only")
    directory = write(tmp_path / "sql", FIRST)
    targets = tmp_path / "targets"
    env = cli_env()
    for text, needle in (("ok $UNSET_URL\n", "targets:1: $UNSET_URL is not set"), ("a b c\n", "targets:1:")):
        targets.write_text(text)
        result = run_cli("migrate", "--migrations", str(directory), "--targets", str(targets), env=env)
        assert result.code == 2 and needle in result.finished["error"], result.stdout
    targets.write_text(f"only {server.url(database)}\n")
    write(directory, {"0003_bad.sql": "SELEC 1;\n"})
    refused = run_cli("migrate", "--migrations", str(directory), "--targets", str(targets), env=env)
    assert refused.code == 5 and not refused.named("target.finished")
    with fleet.admin(database) as conn:
        assert conn.execute("SELECT to_regclass('release_runner.history')").fetchone() == (None,)
    for command in (["baseline"], ["repair", "--applied", "0001", "--reason", "x"]):
        result = run_cli(*command, "--migrations", str(directory), "--targets", str(targets), env=env)
        assert result.code == 2 and "one database" in result.stderr + result.stdout


TRIALS = int(os.environ.get("RELEASE_RUNNER_FLEET_TRIALS", "4"))
COUNTED = ["0002", "0003", "0004", "0005"]


@pytest.mark.parametrize("trial", range(TRIALS))
def test_signals_at_random_moments_of_a_fleet(trial: int, tmp_path: Path, fleet: Fleet) -> None:
    """SIGTERM, SIGINT or SIGKILL at a random moment of a fleet run (--parallel 4), then a
    rerun: for every target its history, its data and its target.finished agree, nothing is
    applied twice, and no lock is left."""
    rng = random.Random(1000 + trial)
    names = [f"r{i}" for i in range(8)]
    databases = {name: fleet.database(name) for name in names}
    files = {"0001_counter.sql": "CREATE TABLE counter (version text);\n"}
    for version in COUNTED:
        files[f"{version}_step.sql"] = f"INSERT INTO counter VALUES ('{version}');\nSELECT pg_sleep(0.15);\n"
    directory = write(tmp_path / "sql", files)
    query = _query([(name, None, databases[name], None) for name in names])
    env = cli_env(fleet.server.url(fleet.control))
    args = [
        "migrate",
        "--no-verify",
        "--migrations",
        str(directory),
        "--targets-query",
        query,
        "--parallel",
        "4",
    ]
    process = subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    fault = rng.choice(["SIGTERM", "SIGINT", "SIGKILL"])
    time.sleep(rng.uniform(0.3, 3.0))  # the random moment of the fault, not a wait for a state
    process.send_signal(getattr(signal, fault))
    stdout, stderr = process.communicate(timeout=120)
    assert PASSWORD not in stdout + stderr and "Traceback" not in stderr, stderr
    if fault != "SIGKILL":
        _every_target_says_what_its_history_says(
            fleet, databases, events_of(stdout), fault, process.returncode
        )
    rerun = run_cli(*args, "--stale-lock-after", "20s", env=env)
    assert rerun.code == 0, rerun.stdout[-3000:]
    for name in names:
        with fleet.admin(databases[name]) as conn:
            rows = conn.execute(
                "SELECT version, count(*) FROM counter GROUP BY version ORDER BY 1"
            ).fetchall()
            assert rows == [(version, 1) for version in COUNTED], (fault, name, rows)
            assert _versions(conn) == ["0001", *COUNTED]
            locks = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()
            assert locks == (0,), (fault, name)


def _every_target_says_what_its_history_says(
    fleet: Fleet, databases: dict[str, str], events: list[dict[str, Any]], fault: str, code: int
) -> None:
    """One target.finished per target; each one's `applied` is the rows its run wrote; the
    summary is last and its code is the signal's (or 0 when the fleet was done)."""
    finished = events[-1]
    assert finished["event"] == "release.finished", events[-3:]
    assert code in (0, 128 + getattr(signal, fault)) and finished["exit_code"] == code
    ended = {e["target"]: e for e in events if e["event"] == "target.finished"}
    assert set(ended) == set(databases), (fault, sorted(ended))
    for name, event in ended.items():
        with fleet.admin(databases[name]) as conn:
            exists = conn.execute("SELECT to_regclass('release_runner.history')").fetchone()
            recorded = 0
            if exists and exists[0]:
                row = conn.execute(
                    "SELECT count(*) FROM release_runner.history WHERE run_id = %s AND status = 'applied'",
                    (finished["run_id"],),
                ).fetchone()
                recorded = row[0] if row else 0
        assert event["applied"] == recorded, (fault, name, event, recorded)
