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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Paired:
    """Wall times of two ways to do the same work, run in turns. Unpacks as the two medians
    (baseline, ours); `ratios` are ours / baseline pair by pair, for their spread."""

    baseline_times: list[float]
    ours_times: list[float]
    baseline_cpu: list[float]
    ours_cpu: list[float]
    """CPU seconds (user + system) of the child processes each run started: what the tools
    themselves cost, without the server's time and the machine's noise in the wall clock."""

    def __iter__(self) -> Iterator[float]:
        return iter((statistics.median(self.baseline_times), statistics.median(self.ours_times)))

    @property
    def ratios(self) -> list[float]:
        return [o / b for b, o in zip(self.baseline_times, self.ours_times, strict=True)]

    def ratio(self) -> str:
        """The ratio of the medians, and the range of the pairs' ratios."""
        baseline, ours = self
        return f"{ours / baseline:.2f}x (pairs {min(self.ratios):.2f}-{max(self.ratios):.2f})"

    def cpu_ratio(self) -> str:
        """The ratio of the median CPU times of the child processes ('-' when none ran)."""
        baseline, ours = statistics.median(self.baseline_cpu), statistics.median(self.ours_cpu)
        return f"{ours / baseline:.2f}x ({baseline * 1000:.0f} / {ours * 1000:.0f} ms)" if baseline else "-"


def paired_medians(
    runs: int, prepare: Callable[[], str], baseline: Callable[[str], object], ours: Callable[[str], object]
) -> Paired:
    """Two ways to do the same work, run in turns so that a change in the machine's load hits
    both alike. The order flips from pair to pair (baseline first, then ours first): on this
    machine a server slows from run to run as they leave files and WAL behind, and whichever
    ran second in every pair paid for that drift (applying 1,000 migrations, the loop's own
    time grew from 1.6 s to 3.4 s over four pairs). `prepare` (untimed) returns the URL each
    run works on."""
    times: tuple[list[float], list[float]] = ([], [])
    cpu: tuple[list[float], list[float]] = ([], [])
    for index in range(runs):
        pair = ((baseline, times[0], cpu[0]), (ours, times[1], cpu[1]))
        for work, bucket, cpu_bucket in pair if index % 2 == 0 else reversed(pair):
            url = prepare()
            before = _children_cpu()
            started = time.perf_counter()
            work(url)
            bucket.append(time.perf_counter() - started)
            cpu_bucket.append(_children_cpu() - before)
    return Paired(*times, *cpu)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def on_fresh_databases(
    cluster: LocalCluster, runs: int, baseline: Callable[[str], object], ours: Callable[[str], object]
) -> Paired:
    """paired_medians() with a fresh database for every run, and a CHECKPOINT before it: what
    the run before left unwritten (a thousand tables' files, the dropped database's) is then
    not written while the next one is timed."""

    def prepare() -> str:
        url = fresh_database(cluster, "bench")
        with connect(cluster.url()) as conn:
            conn.execute("CHECKPOINT")
        return url

    return paired_medians(runs, prepare, baseline, ours)


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
