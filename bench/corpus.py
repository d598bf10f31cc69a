"""Apply a whole real migration set from empty: release-runner against one psql session that
runs the same files in the same order (no -1, so the concurrent-index files run). Target for
prisma-triggerdev (820 migrations): within 1.5x of psql.

usage: python3 bench/corpus.py [SET ...]"""

from __future__ import annotations

import subprocess
import sys

from common import CORPUS, LocalCluster, on_fresh_databases, run_runner, table

from release_runner.core.migrations import read_directory
from release_runner.run.scratch import find_bindir

SETS = sys.argv[1:] or ["prisma-triggerdev", "prisma-documenso", "drizzle-dokploy"]
RUNS = 3


def psql_session(url: str, files: list[str]) -> None:
    bindir = find_bindir()
    psql = str(bindir / "psql") if bindir else "psql"
    arguments = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url]
    for path in files:
        arguments += ["-f", path]
    subprocess.run(arguments, check=True, capture_output=True)


def measure(cluster: LocalCluster, name: str) -> tuple[str, ...] | None:
    directory = CORPUS / name
    if not directory.is_dir():
        print(f"{directory} is absent; skipped")
        return None
    files = [str(m.path) for m in read_directory(directory).migrations]
    psql, ours = on_fresh_databases(
        cluster,
        RUNS,
        lambda url: psql_session(url, files),
        lambda url: run_runner("migrate", "--migrations", str(directory), url=url),
    )
    return (f"{name} ({len(files)})", f"{psql:.2f} s", f"{ours:.2f} s", f"{ours / psql:.2f}x")


def main() -> None:
    with LocalCluster(durable=True) as cluster:
        rows = [row for name in SETS if (row := measure(cluster, name))]
    table(
        f"whole real sets from empty, fsync on (median of {RUNS}); the runner includes preflight and verification",
        rows,
        ("set (migrations)", "one psql session", "release-runner", "ratio"),
    )


if __name__ == "__main__":
    main()
