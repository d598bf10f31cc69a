"""The folders drizzle-kit and Prisma really write, each shape a fixture of our own: each either
works or is refused with what to do (exit 2, the file named, the database untouched)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from release_runner.db.history import HistoryStore
from tests.conftest import history, run_cli, table_exists, write

LOCK = 'provider = "postgresql"\n'


def _journal(*entries: tuple[str, int, bool]) -> str:
    """drizzle-kit's meta/_journal.json: (tag, when, breakpoints) in idx order."""
    listed = [
        {"idx": i, "version": "7", "when": when, "tag": tag, "breakpoints": breakpoints}
        for i, (tag, when, breakpoints) in enumerate(entries)
    ]
    return json.dumps({"version": "7", "dialect": "postgresql", "entries": listed})


# shape -> (files, exit code, versions applied, what the error or warning names)
SHAPES: dict[str, tuple[dict[str, str], int, list[str], str]] = {
    "a Prisma folder whose name ends in .sql": (
        {"migration_lock.toml": LOCK, "20240101000000_init.sql/migration.sql": "CREATE TABLE a (id int);\n"},
        0,
        ["20240101000000_init.sql"],
        "",
    ),
    "a Prisma migration_lock.toml of another provider": (
        {
            "migration_lock.toml": 'provider = "mysql"\n',
            "20240101000000_init/migration.sql": "CREATE TABLE a (id int);\n",
        },
        2,
        [],
        "migration_lock.toml: these Prisma migrations are for 'mysql', not PostgreSQL",
    ),
    "drizzle's breakpoints: false (statements split by the parser)": (
        {
            "0000_init.sql": "CREATE TABLE a (id int);\nCREATE TABLE b (id int);\nALTER TABLE b ADD COLUMN n text;\n",
            "meta/_journal.json": _journal(("0000_init", 1700000000000, False)),
        },
        0,
        ["0000"],
        "",
    ),
    "a drizzle file the journal does not list": (
        {
            "0000_init.sql": "CREATE TABLE a (id int);\n",
            "0001_orphan.sql": "CREATE TABLE orphan (id int);\n",
            "meta/_journal.json": _journal(("0000_init", 1700000000000, True)),
        },
        0,
        ["0000"],
        "0001_orphan.sql",
    ),
    "a drizzle journal entry without its file": (
        {
            "0000_init.sql": "CREATE TABLE a (id int);\n",
            "meta/_journal.json": _journal(
                ("0000_init", 1700000000000, True), ("0001_gone", 1700000001000, True)
            ),
        },
        2,
        [],
        "entry '0001_gone' has no file 0001_gone.sql",
    ),
    # A branch merged late: drizzle-kit skips an entry older (`when`) than the last applied one.
    "a drizzle entry whose `when` is older than the one before it": (
        {
            "0000_init.sql": "CREATE TABLE a (id int);\n",
            "0001_late.sql": "CREATE TABLE late (id int);\n",
            "meta/_journal.json": _journal(
                ("0000_init", 1700000009000, True), ("0001_late", 1700000000000, True)
            ),
        },
        0,
        ["0000", "0001"],
        "",
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_generator_folder_shape(
    shape: str, tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    files, code, applied, named = SHAPES[shape]
    directory = write(tmp_path / "migrations", files)
    result = run_cli("migrate", "--migrations", str(directory), url=url)
    assert result.code == code, result.stdout[-2000:]
    assert [e["version"] for e in result.named("migration.applied")] == applied
    if code:
        assert named in result.finished["error"] and "Traceback" not in result.stdout + result.stderr
        assert not HistoryStore("release_runner").exists(admin) and not table_exists(admin, "a")
        return
    assert [row[0] for row in history(admin)] == applied
    if named:
        assert [Path(e["file"]).name for e in result.named("migrations.ignored")] == [named]
        assert not table_exists(admin, "orphan")
    if "breakpoints" in shape:
        columns = admin.execute(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'b'::regclass AND attnum > 0"
        )
        assert columns.fetchone() == (2,)
