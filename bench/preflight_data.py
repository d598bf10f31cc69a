"""Data preflight: what the probes cost, and what they add to a release.

1. On one table of ROWS rows (default ten million) with one violating row, the last one written
   (the statement's worst case: it fails only at the end of its scan), for each rule: the
   probe's time with and without an index that supports it, against the time the statement
   itself takes to fail (run in a transaction and rolled back).
2. A release of 50 pending migrations over a healthy database (50 tables of TABLE_ROWS rows, no
   violation): `migrate` with `--data-preflight off` and `on`, in turns, fresh databases; the
   added time against the release's own. Two mixes: a typical one (one migration in five has a
   statement the data can refuse, the rest add columns and indexes) and the worst case (every
   migration has one).

usage: python3 bench/preflight_data.py   (ROWS=N, TABLE_ROWS=N, BENCH_RUNS=N paired runs, default 3)"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from common import LocalCluster, connect, fresh_database, paired_medians, run_runner, table

from release_runner.core.data_checks import plan
from release_runner.core.migrations import read_directory
from release_runner.core.preflight import prepare_all
from release_runner.db import catalog
from release_runner.run.data_checks import LIMIT

ROWS = int(os.environ.get("ROWS", "10000000"))
TABLE_ROWS = int(os.environ.get("TABLE_ROWS", "50000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
MIGRATIONS = 50

# rule: the statement, the index that supports its probe (None: no index can), the violating row
RULES = {
    "not-null": (
        "ALTER TABLE big ALTER COLUMN a SET NOT NULL",
        "CREATE INDEX ON big (a)",
        "(0, NULL, 0, '0', 1)",
    ),
    "unique": ("CREATE UNIQUE INDEX big_b ON big (b)", "CREATE INDEX ON big (b)", "(0, 0, 1, '0', 1)"),
    "check": (
        "ALTER TABLE big ADD CONSTRAINT positive CHECK (a >= 0)",
        "CREATE INDEX ON big (a)",
        "(0, -1, 0, '0', 1)",
    ),
    "foreign-key": (
        "ALTER TABLE big ADD CONSTRAINT big_parent FOREIGN KEY (parent) REFERENCES parent (id)",
        "CREATE INDEX ON big (parent)",
        "(0, 0, 0, '0', 5000)",
    ),
    "cast": ("ALTER TABLE big ALTER COLUMN code TYPE int USING code::int", None, "(0, 0, 0, 'x', 1)"),
}


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def build(url: str, violation: str) -> None:
    """big: ROWS rows, then the violating row; parent: the 1,000 keys big refers to."""
    with connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS big; DROP TABLE IF EXISTS parent")
        conn.execute(
            "CREATE TABLE parent (id int PRIMARY KEY); INSERT INTO parent SELECT generate_series(1, 1000)"
        )
        conn.execute("CREATE TABLE big (id bigint, a int, b int, code text, parent int)")
        conn.execute(
            "INSERT INTO big SELECT g, g %% 1000, g, g::text, 1 + g %% 1000 FROM generate_series(1, %s) g",
            (ROWS,),
        )
        conn.execute(f"INSERT INTO big VALUES {violation}")
        conn.execute("VACUUM ANALYZE big")


def probe_query(statement: str) -> str:
    """The query the runner's data check of `statement` runs (bounded as it bounds it)."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "0001_step.sql").write_text(statement + ";\n")
        (probe,), _ = plan(prepare_all(read_directory(Path(tmp)).migrations))
    return probe.query if probe.kind == "cast" else f"SELECT count(*) FROM ({probe.query} LIMIT {LIMIT}) p"


def probe_time(url: str, query: str) -> float:
    with connect(url) as conn:
        return timed(lambda: _swallow(lambda: catalog.probe(conn, query, "10min")))


def failure_time(url: str, statement: str) -> float:
    """How long the statement itself runs before the data refuses it (rolled back)."""
    with connect(url) as conn:
        return timed(lambda: _swallow(lambda: conn.execute(statement)))


def _swallow(work: Callable[[], object]) -> None:
    """Run `work`; the failure is what is being timed, not an error of the benchmark."""
    with contextlib.suppress(psycopg.Error, catalog.ProbeFailed):
        work()


def per_rule(cluster: LocalCluster) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for rule, (statement, index, violation) in RULES.items():
        url = fresh_database(cluster, "big")
        build(url, violation)
        query = probe_query(statement)
        bare = statistics.median(probe_time(url, query) for _ in range(RUNS))
        fails = failure_time(url, statement)
        indexed = "-"
        if index is not None:
            with connect(url) as conn:
                conn.execute(index)
                conn.execute("ANALYZE big")
            indexed = f"{statistics.median(probe_time(url, query) for _ in range(RUNS)):.3f} s"
        rows.append((rule, f"{bare:.3f} s", indexed, f"{fails:.3f} s"))
    return rows


def make_release(directory: Path, every: int) -> None:
    """50 migrations over t_1..t_50; migration i has a statement the data can refuse when
    i % every == 0, cycling through the rules."""
    refusable = [
        "ALTER TABLE t_{i} ALTER COLUMN a SET NOT NULL;",
        "CREATE UNIQUE INDEX t_{i}_b ON t_{i} (b);",
        "ALTER TABLE t_{i} ADD CONSTRAINT t_{i}_positive CHECK (a >= 0);",
        "ALTER TABLE t_{i} ADD CONSTRAINT t_{i}_parent FOREIGN KEY (parent) REFERENCES parent (id);",
        "ALTER TABLE t_{i} ALTER COLUMN code TYPE bigint USING code::bigint;",
    ]
    for i in range(1, MIGRATIONS + 1):
        text = f"ALTER TABLE t_{i} ADD COLUMN note_{i} text;\nCREATE INDEX t_{i}_a ON t_{i} (a);\n"
        if i % every == 0:
            text += refusable[(i // every) % len(refusable)].format(i=i) + "\n"
        (directory / f"{i:04d}_step_{i}.sql").write_text(text)


def healthy(cluster: LocalCluster) -> str:
    url = fresh_database(cluster, "release")
    with connect(url) as conn:
        conn.execute(
            "CREATE TABLE parent (id int PRIMARY KEY); INSERT INTO parent SELECT generate_series(1, 1000)"
        )
        for i in range(1, MIGRATIONS + 1):
            conn.execute(f"CREATE TABLE t_{i} (id bigint, a int, b int, code text, parent int)")
            conn.execute(
                f"INSERT INTO t_{i} SELECT g, g %% 1000, g, g::text, 1 + g %% 1000 FROM generate_series(1, %s) g",
                (TABLE_ROWS,),
            )
        conn.execute("VACUUM ANALYZE")
    return url


def migrating(*args: str) -> Callable[[str], object]:
    """`release-runner ARGS` against the URL it is given."""
    return lambda url: run_runner(*args, url=url)


def per_release(cluster: LocalCluster) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for label, every in (("typical: 1 migration in 5", 5), ("worst: every migration", 1)):
        with tempfile.TemporaryDirectory() as tmp:
            make_release(Path(tmp), every)
            migrate = ("migrate", "--no-verify", "--post-deploy", "--migrations", tmp)
            paired = paired_medians(
                RUNS,
                lambda: healthy(cluster),
                migrating(*migrate, "--data-preflight", "off"),
                migrating(*migrate),
            )
            off, on = paired
            rows.append(
                (label, f"{off:.2f} s", f"{on:.2f} s", f"{(on - off) / off * 100:+.0f}% ({paired.ratio()})")
            )
    return rows


def main() -> None:
    with LocalCluster(durable=False) as cluster:
        rules = per_rule(cluster)
        releases = per_release(cluster)
    table(
        f"data probe per rule on {ROWS:,} rows, one violating row written last (probe: median of {RUNS})",
        rules,
        ("rule", "probe, no index", "probe, with index", "the statement fails after"),
    )
    table(
        f"a release of {MIGRATIONS} migrations over 50 tables of {TABLE_ROWS:,} rows, no violation "
        f"(median of {RUNS} paired runs)",
        releases,
        ("release", "--data-preflight off", "on", "added"),
    )


if __name__ == "__main__":
    main()
