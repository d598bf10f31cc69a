"""Import time of each wing, in fresh processes (python -X importtime): the time of the wing's
own modules, and of the whole import with what it brings (psycopg, click, structlog, tenacity).
Prints the median and the range of RUNS runs.

usage: python3 bench/imports.py [RUNS]"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
from pathlib import Path

from common import table

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 9
PACKAGE = Path(__file__).resolve().parent.parent / "release_runner"
WINGS = ("core", "db", "run", "cli")
LIBRARIES = ("psycopg", "click", "structlog", "tenacity", "pglast")
_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def _modules(wing: str) -> list[str]:
    return sorted(
        f"release_runner.{wing}.{path.stem}"
        for path in (PACKAGE / wing).glob("*.py")
        if path.stem != "__init__"
    )


def _importtime(code: str) -> list[tuple[int, int, int, str]]:
    """(self µs, cumulative µs, depth, module) of every import a fresh interpreter makes."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parent,  # this checkout's package, whatever else is installed
    )
    rows = []
    for line in done.stderr.splitlines():
        match = _LINE.match(line)
        if match:
            rows.append((int(match.group(1)), int(match.group(2)), len(match.group(3)), match.group(4)))
    return rows


def _measure(code: str, own_prefix: str) -> tuple[float, float]:
    """(ms of the modules under `own_prefix`, ms of the whole import) for one run."""
    rows = _importtime(code)
    own = sum(self_us for self_us, _, _, name in rows if name.startswith(own_prefix))
    whole = sum(cumulative for _, cumulative, depth, _ in rows if depth == 1)
    return own / 1000, whole / 1000


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ms ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    rows: list[tuple[str, ...]] = []
    for wing in WINGS:
        code = "import " + ", ".join(_modules(wing))
        runs = [_measure(code, f"release_runner.{wing}.") for _ in range(RUNS)]
        rows.append((f"{wing}/", _spread([own for own, _ in runs]), _spread([whole for _, whole in runs])))
    commands = [
        _measure("import release_runner.commands, release_runner.cli.main", "release_runner")
        for _ in range(RUNS)
    ]
    rows.append(
        ("a command (cli + commands)", _spread([o for o, _ in commands]), _spread([w for _, w in commands]))
    )
    for library in LIBRARIES:
        runs = [_measure(f"import {library}", library) for _ in range(RUNS)]
        rows.append((library, _spread([own for own, _ in runs]), _spread([whole for _, whole in runs])))
    table(
        f"import time, fresh interpreter each run (median and range of {RUNS})",
        rows,
        ("what is imported", "its own modules", "with everything it imports"),
    )


if __name__ == "__main__":
    main()
