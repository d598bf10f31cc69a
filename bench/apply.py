"""Apply 1,000 trivial migrations, and a no-op run over 1,000 applied, against a bare psycopg
loop (bare_loop.py, a process of its own like the runner), with fsync on and off. Also the
runner's peak RSS. Prints medians and ratios.

usage: python3 bench/apply.py [COUNT]   (BENCH_RUNS=N: N paired runs each, default 5)"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import (
    LocalCluster,
    children_peak_rss_mb,
    fresh_database,
    on_fresh_databases,
    paired_medians,
    run_runner,
    table,
)

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def make_migrations(directory: Path) -> None:
    for i in range(1, COUNT + 1):
        (directory / f"{i:05d}_table_{i}.sql").write_text(
            f"CREATE TABLE t_{i} (id bigint PRIMARY KEY, note text);\n"
        )


def bare_loop(url: str, directory: Path) -> None:
    subprocess.run(
        [sys.executable, str(Path(__file__).parent / "bare_loop.py"), url, str(directory)], check=True
    )


def measure(cluster: LocalCluster, directory: Path, label: str) -> list[tuple[str, ...]]:
    """Apply COUNT migrations to a fresh database, RUNS times each way."""
    paired = on_fresh_databases(
        cluster,
        RUNS,
        lambda url: bare_loop(url, directory),
        lambda url: run_runner("migrate", "--migrations", str(directory), url=url),
    )
    bare, ours = paired
    return [(f"apply {COUNT}, {label}", f"{bare:.2f} s", f"{ours:.2f} s", paired.ratio(), paired.cpu_ratio())]


def measure_noop(cluster: LocalCluster, directory: Path) -> list[tuple[str, ...]]:
    """Nothing pending, COUNT applied, verification skipped."""
    bare_url = fresh_database(cluster, "bench_bare")
    bare_loop(bare_url, directory)
    url = fresh_database(cluster, "bench")
    run_runner("migrate", "--migrations", str(directory), url=url)
    paired = paired_medians(
        RUNS * 3,
        lambda: "",
        lambda _: bare_loop(bare_url, directory),
        lambda _: run_runner("migrate", "--no-verify", "--migrations", str(directory), url=url),
    )
    bare, ours = paired
    return [(f"no-op, {COUNT} applied", f"{bare:.2f} s", f"{ours:.2f} s", paired.ratio(), paired.cpu_ratio())]


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        make_migrations(directory)
        with LocalCluster(durable=True) as cluster:
            rows += measure(cluster, directory, "fsync on")
        with LocalCluster(durable=False) as cluster:
            rows += measure(cluster, directory, "fsync off")
            rows += measure_noop(cluster, directory)
    table(
        f"release-runner vs a bare psycopg loop (median of {RUNS}, no-op {RUNS * 3}); "
        f"peak RSS of the runner: {children_peak_rss_mb():.0f} MB",
        rows,
        ("workload", "bare loop", "release-runner", "ratio (wall)", "ratio (CPU of the process)"),
    )


if __name__ == "__main__":
    main()
