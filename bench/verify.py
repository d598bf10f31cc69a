"""Schema verification cost on N tables x 15 columns, each with a primary key, two indexes and a
foreign key: release-runner's verify core (load the snapshot, one catalog query, compare)
against a bare psycopg verify (load its expected rows from a JSON file, fetch columns,
constraints and indexes with three queries, compare in Python), `pg_dump --schema-only`, and
migra when it is installed (MIGRA=path/to/migra; it needs a venv of its own:
pip install migra psycopg2-binary 'psycopg[binary]'). Shows the curve over sizes.

usage: python3 bench/verify.py [N ...]   (default: 200 2000 10000)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

from common import LocalCluster, connect, fresh_database, median_of, paired_medians, table

from release_runner.core import drift, schema
from release_runner.core.objects import objects_from_catalog
from release_runner.db import catalog
from release_runner.run.scratch import find_bindir

SIZES = [int(n) for n in sys.argv[1:]] or [200, 2000, 10000]
RUNS = 5

BARE_QUERIES = [
    "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
    " pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid"
    " AND d.adnum = a.attnum WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0"
    " AND NOT a.attisdropped",
    "SELECT c.relname, co.conname, pg_get_constraintdef(co.oid) FROM pg_constraint co"
    " JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = 'public'",
    "SELECT c.relname, i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x"
    " JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
]


def build(url: str, count: int) -> None:
    with connect(url) as conn:
        for start in range(0, count, 500):
            statements = []
            for i in range(start, min(start + 500, count)):
                parent = (
                    f"parent_id bigint REFERENCES t_{i - 1} (id) ON DELETE CASCADE,"
                    if i
                    else "parent_id bigint,"
                )
                columns = ", ".join(
                    f"c{k} {'text' if k % 2 else 'integer NOT NULL DEFAULT 0'}" for k in range(13)
                )
                statements.append(
                    f"CREATE TABLE t_{i} (id bigint PRIMARY KEY, {parent} {columns});"
                    f"CREATE INDEX t_{i}_c1 ON t_{i} (c1);CREATE INDEX t_{i}_c2_c3 ON t_{i} (c2, c3) WHERE c2 > 0;"
                )
            conn.execute("".join(statements))


def bare_snapshot(url: str, path: Path) -> None:
    """The bare tool's expected schema: its three result sets, saved as JSON."""
    with connect(url) as conn:
        path.write_text(
            json.dumps({query: conn.execute(query).fetchall() for query in BARE_QUERIES}, default=str)
        )


def bare(url: str, path: Path) -> bool:
    """The floor for any verify against a committed file: load the expected rows, fetch the
    catalog with three queries, key both by name and compare."""
    expected = json.loads(path.read_text())
    with connect(url) as conn:
        fetched = {query: conn.execute(query).fetchall() for query in BARE_QUERIES}
    return all(
        {tuple(row[:2]): list(row) for row in fetched[q]} == {tuple(row[:2]): row for row in expected[q]}
        for q in BARE_QUERIES
    )


def ours(url: str, snapshot: Path) -> bool:
    loaded = schema.load(snapshot)
    expected = loaded.objects if loaded else None
    with connect(url) as conn:
        actual = objects_from_catalog(catalog.fetch_catalog(conn, "release_runner"))
    return not [m for m in drift.compare(expected, actual) if m.fails]


def main() -> None:
    rows = []
    migra = os.environ.get("MIGRA") or shutil.which("migra")
    with LocalCluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        for count in SIZES:
            rows.append(measure(cluster, Path(tmp), count, migra))
    table(
        f"verify (median of {RUNS}); bare = load expected rows + 3 catalog queries + compare in Python",
        rows,
        (
            "schema",
            "bare fetch+compare",
            "release-runner verify",
            "ratio",
            "pg_dump -s",
            "migra",
            "migra / ours",
        ),
    )


def measure(cluster: LocalCluster, tmp: Path, count: int, migra: str | None) -> tuple[str, ...]:
    """One row: `count` tables verified by the bare floor, by release-runner, pg_dump and migra."""
    bindir = find_bindir()
    pg_dump = str(bindir / "pg_dump") if bindir else "pg_dump"
    url = fresh_database(cluster, f"verify_{count}")
    build(url, count)
    snapshot = tmp / f"{count}.json"
    with connect(url) as conn:
        objects = objects_from_catalog(catalog.fetch_catalog(conn, "release_runner"))
    snapshot.write_text(schema.dump(schema.Snapshot(objects, None)))
    bare_file = tmp / f"{count}.bare.json"
    bare_snapshot(url, bare_file)
    assert bare(url, bare_file)
    assert ours(url, snapshot)
    bare_time, ours_time = paired_medians(
        RUNS, partial(str, url), partial(bare, path=bare_file), partial(ours, snapshot=snapshot)
    )
    dump = [pg_dump, "--schema-only", "-d", url]
    dump_time = median_of(RUNS, partial(subprocess.run, dump, capture_output=True, check=True))
    row = [
        f"{count} tables",
        f"{bare_time:.2f} s",
        f"{ours_time:.2f} s",
        f"{ours_time / bare_time:.2f}x",
        f"{dump_time:.2f} s",
    ]
    if not migra:
        return (*row, "not installed", "-")
    other = fresh_database(cluster, f"verify_{count}_copy")
    build(other, count)
    command = [migra, "--unsafe", _uri(url), _uri(other)]
    migra_time = median_of(
        1 if count > 2000 else 3, partial(subprocess.run, command, capture_output=True, check=True)
    )
    return (*row, f"{migra_time:.2f} s", f"{migra_time / ours_time:.1f}x")


def _uri(conninfo: str) -> str:
    """migra wants a URL; the local cluster's conninfo uses a socket directory."""
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(conninfo)
    return f"postgresql://{parts['user']}@/{parts['dbname']}?host={parts['host']}&port={parts['port']}"


if __name__ == "__main__":
    main()
