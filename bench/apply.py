"""Apply 1,000 trivial migrations, and a no-op run over 1,000 applied, against a bare psycopg
loop (bare_loop.py, a process of its own like the runner), with fsync on and off. Also the
runner's peak RSS. Prints medians and ratios.

usage: python3 bench/apply.py [COUNT]"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from common import LocalCluster, children_peak_rss_mb, fresh_database, median_time, run_runner, table

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
RUNS = 3


def make_migrations(directory: Path) -> None:
    for i in range(1, COUNT + 1):
        (directory / f"{i:05d}_table_{i}.sql").write_text(
            f"CREATE TABLE t_{i} (id bigint PRIMARY KEY, note text);\n"
        )


def bare_loop(url: str, directory: Path) -> None:
    subprocess.run(
        [sys.executable, str(Path(__file__).parent / "bare_loop.py"), url, str(directory)], check=True
    )


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        make_migrations(directory)
        for durable in (True, False):
            with LocalCluster(durable=durable) as cluster:
                label = "fsync on" if durable else "fsync off"
                holder: dict[str, str] = {}

                def prepare(holder: dict[str, str] = holder, cluster: LocalCluster = cluster) -> None:
                    holder["url"] = fresh_database(cluster, "bench")

                bare = median_time(RUNS, prepare, lambda: bare_loop(holder["url"], directory))
                ours = median_time(
                    RUNS,
                    prepare,
                    lambda: run_runner("migrate", "--migrations", str(directory), url=holder["url"]),
                )
                rows.append(
                    (f"apply {COUNT}, {label}", f"{bare:.2f} s", f"{ours:.2f} s", f"{ours / bare:.2f}x")
                )
                if not durable:
                    bare_url = fresh_database(cluster, "bench_bare")
                    bare_loop(bare_url, directory)
                    url = fresh_database(cluster, "bench")
                    run_runner("migrate", "--migrations", str(directory), url=url)
                    bare_noop = median_time(RUNS, lambda: None, lambda: bare_loop(bare_url, directory))
                    ours_noop = median_time(
                        RUNS,
                        lambda: None,
                        lambda: run_runner("migrate", "--no-verify", "--migrations", str(directory), url=url),
                    )
                    rows.append(
                        (
                            f"no-op, {COUNT} applied",
                            f"{bare_noop:.2f} s",
                            f"{ours_noop:.2f} s",
                            f"{ours_noop / bare_noop:.2f}x",
                        )
                    )
    table(
        f"release-runner vs a bare psycopg loop (median of {RUNS}); peak RSS of the runner: "
        f"{children_peak_rss_mb():.0f} MB",
        rows,
        ("workload", "bare loop", "release-runner", "ratio"),
    )


if __name__ == "__main__":
    main()
