"""core/adopt.py: drizzle-kit's and Prisma's history matched to files."""

from __future__ import annotations

from typing import Any

from release_runner.core import adopt
from tests.conftest import migration_value


def test_drizzle_history_matches_by_hash_and_names_edits() -> None:
    """A drizzle row matches its file by SHA-256; a row whose `when` names an edited file, and a
    row that matches nothing, are problems."""
    first, second = (
        migration_value("0000", "CREATE TABLE a ();", 100),
        migration_value("0001", "CREATE TABLE b ();", 200),
    )
    rows = [
        {"id": 1, "hash": first.raw_sha256, "created_at": 100},
        {"id": 2, "hash": "0" * 64, "created_at": 200},
        {"id": 3, "hash": "f" * 64, "created_at": 300},
    ]
    adoption = adopt.match_drizzle(rows, [first, second])
    assert adoption.applied == [first]
    assert len(adoption.problems) == 2
    assert "drizzle applied a different text" in adoption.problems[0]
    assert "matches no file" in adoption.problems[1]


def test_prisma_history_skips_rolled_back_and_refuses_unfinished() -> None:
    """Rolled-back Prisma rows are not applied; unfinished, folderless and edited ones refuse."""
    first, second = migration_value("20240101_a", "SELECT 1;"), migration_value("20240102_b", "SELECT 2;")
    rows: list[dict[str, Any]] = [
        {
            "migration_name": first.version,
            "checksum": first.raw_sha256,
            "finished_at": 1,
            "rolled_back_at": None,
        },
        {"migration_name": second.version, "checksum": "x", "finished_at": 1, "rolled_back_at": 1},
        {"migration_name": second.version, "checksum": "edited", "finished_at": 1, "rolled_back_at": None},
        {"migration_name": "20240103_c", "checksum": "x", "finished_at": None, "rolled_back_at": None},
        {"migration_name": "20240104_d", "checksum": "x", "finished_at": 1, "rolled_back_at": None},
    ]
    adoption = adopt.match_prisma(rows, [first, second])
    assert adoption.applied == [first]
    assert ["edited after Prisma" in p for p in adoption.problems] == [True, False, False]
    assert "never finished" in adoption.problems[1] and "has no folder" in adoption.problems[2]


def test_a_database_built_without_history_is_told_apart() -> None:
    """What the first pending migration creates outright and is there already; and the newest
    migration up to which everything created is there (one that creates nothing does not
    decide; IF NOT EXISTS and OR REPLACE never count)."""
    pending = [
        migration_value("0001", "CREATE TABLE a (id int);\nCREATE TYPE mood AS ENUM ('x');"),
        migration_value("0002", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';"),
        migration_value("0003", "ALTER TABLE a ADD b int;\nCREATE TABLE IF NOT EXISTS c (id int);"),
        migration_value("0004", "CREATE INDEX a_b ON s.a (b);"),
    ]
    existing = {("relation", "a"), ("type", "mood"), ("function", "f")}
    there, whole = adopt.built_without_history(pending, existing)
    assert there == [("relation", "a"), ("type", "mood")] and whole is pending[1]
    assert adopt.built_without_history(pending, {("relation", "s.a_b")}) == ([], None)
    assert adopt.created_objects(pending[3]) == [("relation", "s.a_b")]
    assert adopt.built_without_history(pending, {("relation", "a")}) == ([("relation", "a")], None)
