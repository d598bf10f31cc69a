"""Shared benchmark helpers: throwaway clusters, timing, medians and ratio tables.

Benchmarks run on demand (`python3 bench/run.py`), never in the test suite."""

from __future__ import annotations

import compileall
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
sys.path.insert(0, str(ROOT))

# The runner's bytecode is compiled first, as `pip install` does for a deployed image: with
# PYTHONDONTWRITEBYTECODE set (as on some machines) every run would otherwise compile the
# package from source, 20 ms that no deployed runner pays.
compileall.compile_dir(ROOT / "release_runner", quiet=1)

from release_runner.db import connection  # noqa: E402
from release_runner.run.scratch import LocalCluster as LocalCluster  # noqa: E402  (the benchmarks use it)


def fresh_database(cluster: LocalCluster, name: str) -> str:
    """Drop and recreate `name` on the cluster; return a trusted URL to it."""
    connection.drop_database(cluster.url(), name)
    connection.create_database(cluster.url(), name)
    return connection.with_dbname(cluster.url(), name)


def median_of(runs: int, work: Callable[[], object]) -> float:
    """Median wall time of `work` over `runs`."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def paired_medians(
    runs: int, prepare: Callable[[], str], baseline: Callable[[str], object], ours: Callable[[str], object]
) -> tuple[float, float]:
    """Median wall times of two ways to do the same work, run in turns (baseline, ours,
    baseline, ...) so that a change in the machine's load hits both alike. `prepare` (untimed)
    returns the URL each run works on. Returns (baseline, ours)."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for work, bucket in ((baseline, times[0]), (ours, times[1])):
            url = prepare()
            started = time.perf_counter()
            work(url)
            bucket.append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


def on_fresh_databases(
    cluster: LocalCluster, runs: int, baseline: Callable[[str], object], ours: Callable[[str], object]
) -> tuple[float, float]:
    """paired_medians() with a fresh database for every run."""
    return paired_medians(runs, lambda: fresh_database(cluster, "bench"), baseline, ours)


def run_runner(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a deploy runs it: a fresh process, JSON logs to a pipe."""
    env = {**os.environ, "RELEASE_RUNNER_DATABASE_URL": url, "RELEASE_RUNNER_LOG_FORMAT": "json"}
    result = subprocess.run(
        [sys.executable, "-m", "release_runner", *args], capture_output=True, text=True, env=env, cwd=ROOT
    )
    if result.returncode != 0:
        raise SystemExit(f"release-runner {' '.join(args)} failed:\n{result.stdout[-3000:]}")
    return result


def children_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def table(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=True)
