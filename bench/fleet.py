"""Fleets on one local PostgreSQL: databases made with CREATE DATABASE ... TEMPLATE (and
schemas in one database), 20 migrations each. Prints, for each size, the fleet's wall time,
targets per second, the runner's peak RSS and the most connections it held at once (read from
pg_stat_activity while it ran); and, on SHELL databases, the fleet against what users do today,
a loop of single-database `release-runner migrate` runs, applying and with everything at head.

usage: python3 bench/fleet.py [SIZES...]   (default 100 1000; BENCH_RUNS=N paired runs, default 3;
       BENCH_SHELL=N databases against the loop, default 200)"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from common import ROOT, LocalCluster, connect, table

from release_runner.db import connection

SIZES = [int(size) for size in sys.argv[1:]] or [100, 1000]
SHELL = int(os.environ.get("BENCH_SHELL", "200"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
PARALLEL = 8
MIGRATIONS = 20


def make_migrations(directory: Path) -> None:
    for i in range(1, MIGRATIONS + 1):
        (directory / f"{i:04d}_step_{i}.sql").write_text(
            f"CREATE TABLE t_{i} (id bigint PRIMARY KEY, note text);\nINSERT INTO t_{i} VALUES ({i}, 'x');\n"
        )


def make_databases(cluster: LocalCluster, count: int, prefix: str) -> list[str]:
    """`count` empty databases copied from one template (fast), and their names."""
    with connect(cluster.url()) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {prefix}_template")
        admin.execute(f"CREATE DATABASE {prefix}_template TEMPLATE template0")
        names = [f"{prefix}_{i}" for i in range(count)]
        for name in names:
            admin.execute(f"DROP DATABASE IF EXISTS {name}")
            admin.execute(f"CREATE DATABASE {name} TEMPLATE {prefix}_template")
    return names


def make_schemas(url: str, count: int) -> list[str]:
    names = [f"tenant_{i}" for i in range(count)]
    with connect(url) as conn:
        for name in names:
            conn.execute(
                f"DROP SCHEMA IF EXISTS {name} CASCADE; DROP SCHEMA IF EXISTS release_runner_{name} CASCADE"
            )
            conn.execute(f"CREATE SCHEMA {name}")
    return names


class ConnectionWatch:
    """The most runner connections open at once, sampled from pg_stat_activity."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.most = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.wait(0.02):
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'release-runner%'"
                ).fetchone()
                self.most = max(self.most, int(row[0]) if row else 0)

    def __enter__(self) -> ConnectionWatch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def migrate(url: str, directory: Path) -> tuple[list[str], dict[str, str]]:
    """`release-runner migrate` as a deploy runs it, on `url`: its command and environment."""
    env = {**os.environ, "RELEASE_RUNNER_DATABASE_URL": url, "RELEASE_RUNNER_LOG_FORMAT": "json"}
    command = [
        sys.executable,
        "-m",
        "release_runner",
        "migrate",
        "--no-verify",
        "--migrations",
        str(directory),
    ]
    return command, env


def run_fleet(control: str, query: str, directory: Path) -> tuple[float, float]:
    """One fleet run: (wall seconds, peak RSS in MB)."""
    command, env = migrate(control, directory)
    command += ["--targets-query", query, "--parallel", str(PARALLEL)]
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True, env=env, cwd=ROOT
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the fleet failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return took, int(done.stderr.strip().splitlines()[-1]) / 1024


def run_loop(urls: list[str], directory: Path) -> float:
    """What users do today: one single-database run after another."""
    started = time.perf_counter()
    for url in urls:
        command, env = migrate(url, directory)
        subprocess.run(command, capture_output=True, env=env, cwd=ROOT, check=True)
    return time.perf_counter() - started


def databases_query(names: list[str]) -> str:
    values = ", ".join(f"('{name}')" for name in names)
    return f"SELECT name, name AS database FROM (VALUES {values}) AS t(name) ORDER BY name"


def exact(cluster: LocalCluster, names: list[str]) -> bool:
    """Every history holds the 20 migrations, once each."""
    for name in names:
        with connect(connection.with_dbname(cluster.url(), name)) as conn:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT version) FROM release_runner.history"
            ).fetchone()
            if row != (MIGRATIONS, MIGRATIONS):
                return False
    return True


def scale(cluster: LocalCluster, directory: Path) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for size in SIZES:
        names = make_databases(cluster, size, f"scale{size}")
        with ConnectionWatch(cluster.url()) as watch:
            took, rss = run_fleet(cluster.url(), databases_query(names), directory)
        rows.append(
            (
                f"{size} databases, apply",
                f"{took:.1f} s",
                f"{size / took:.1f}",
                f"{rss:.0f} MB",
                f"{watch.most} (limit {2 * PARALLEL + 1})",
                "yes" if exact(cluster, names) else "NO",
            )
        )
        _drop(cluster, names)
    return rows


def against_the_loop(cluster: LocalCluster, directory: Path) -> list[tuple[str, ...]]:
    """Fleet against a loop of single runs on SHELL databases, applying then at head."""
    apply: tuple[list[float], list[float]] = ([], [])
    noop: tuple[list[float], list[float]] = ([], [])
    for run in range(RUNS):
        loop_names = make_databases(cluster, SHELL, f"loop{run}")
        fleet_names = make_databases(cluster, SHELL, f"fleet{run}")
        urls = [connection.with_dbname(cluster.url(), name) for name in loop_names]
        query = databases_query(fleet_names)
        apply[0].append(run_loop(urls, directory))
        apply[1].append(run_fleet(cluster.url(), query, directory)[0])
        noop[0].append(run_loop(urls, directory))
        noop[1].append(run_fleet(cluster.url(), query, directory)[0])
        _drop(cluster, loop_names + fleet_names)
    return [
        _compare(f"{SHELL} databases, {what}", times) for what, times in (("apply", apply), ("no-op", noop))
    ]


def schemas(cluster: LocalCluster, directory: Path) -> list[tuple[str, ...]]:
    """SHELL schemas in one database, as a fleet: applying, then at head."""
    url = connection.with_dbname(cluster.url(), "tenants")
    connection.drop_database(cluster.url(), "tenants")
    connection.create_database(cluster.url(), "tenants")
    names = make_schemas(url, SHELL)
    values = ", ".join(f"('{name}')" for name in names)
    query = f"SELECT name, name AS schema FROM (VALUES {values}) AS t(name) ORDER BY name"
    rows: list[tuple[str, ...]] = []
    for what in ("apply", "no-op"):
        took, rss = run_fleet(url, query, directory)
        rows.append(
            (
                f"{SHELL} schemas in one database, {what}",
                f"{took:.1f} s",
                f"{SHELL / took:.1f}",
                f"{rss:.0f} MB",
            )
        )
    return rows


def _compare(label: str, times: tuple[list[float], list[float]]) -> tuple[str, ...]:
    loop, fleet = statistics.median(times[0]), statistics.median(times[1])
    ratios = [a / b for a, b in zip(*times, strict=True)]
    return (
        label,
        f"{loop:.1f} s ({SHELL / loop:.1f}/s)",
        f"{fleet:.1f} s ({SHELL / fleet:.1f}/s)",
        f"{loop / fleet:.1f}x faster (pairs {min(ratios):.1f}-{max(ratios):.1f})",
    )


def _drop(cluster: LocalCluster, names: list[str]) -> None:
    for name in names:
        connection.drop_database(cluster.url(), name)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(durable=False) as cluster:
        directory = Path(tmp)
        make_migrations(directory)
        with connect(cluster.url()) as admin:
            admin.execute("ALTER SYSTEM SET max_connections = 300")
        cluster.restart()
        table(
            f"a fleet of databases, {MIGRATIONS} migrations each, --parallel {PARALLEL}",
            scale(cluster, directory),
            ("fleet", "wall", "targets/s", "peak RSS", "most connections", "histories exact"),
        )
        table(
            f"the fleet against a loop of single-database runs (median of {RUNS} paired runs)",
            against_the_loop(cluster, directory),
            ("workload", "loop of single runs", "fleet", "ratio"),
        )
        table(
            "schema-per-tenant, as a fleet",
            schemas(cluster, directory),
            ("fleet", "wall", "targets/s", "peak RSS"),
        )


if __name__ == "__main__":
    main()
