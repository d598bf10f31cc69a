"""Preflight over the largest real set (prisma-triggerdev, 820 migrations): read the folder,
split with libpg_query and lint every file, in-process. Target: under one second. Also the cost
of importing pglast, which only commands with pending files pay.

usage: python3 bench/preflight.py [SET]"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from common import CORPUS, table

from release_runner.core.migrations import read_directory
from release_runner.core.preflight import prepare_all

NAME = sys.argv[1] if len(sys.argv) > 1 else "prisma-triggerdev"


def main() -> None:
    directory = CORPUS / NAME
    if not directory.is_dir():
        raise SystemExit(f"{directory} is absent")
    reads, preflights = [], []
    for _ in range(5):
        started = time.perf_counter()
        found = read_directory(directory)
        reads.append(time.perf_counter() - started)
        started = time.perf_counter()
        prepared = prepare_all(found.migrations)
        preflights.append(time.perf_counter() - started)
    statements = sum(len(p.statements) for p in prepared)
    importing = subprocess.run(
        [
            sys.executable,
            "-c",
            "import time; t = time.perf_counter(); import pglast.parser; print(time.perf_counter() - t)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    table(
        f"preflight over {NAME} (median of 5, in-process)",
        [
            (f"read {len(found.migrations)} migrations", f"{statistics.median(reads) * 1000:.0f} ms"),
            (f"split + lint {statements} statements", f"{statistics.median(preflights) * 1000:.0f} ms"),
            (
                "total (target < 1000 ms)",
                f"{(statistics.median(reads) + statistics.median(preflights)) * 1000:.0f} ms",
            ),
            ("import pglast (only when something is pending)", f"{float(importing.stdout) * 1000:.0f} ms"),
        ],
        ("step", "time"),
    )


if __name__ == "__main__":
    main()
