"""Statements PostgreSQL will not run in a transaction block, on a real server: refused before
anything is applied when they share a file, run without a transaction when alone in one; and a
new enum value used in the transaction that adds it, refused before anything is applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import history, run_cli, table_exists, write

SETUP = """\
CREATE SCHEMA s;
CREATE TABLE s.x (id int PRIMARY KEY);
CREATE TABLE p (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE p2025 PARTITION OF p FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TYPE mood AS ENUM ('ok');
CREATE TABLE feelings (id int, m mood);
"""
STATEMENTS = {
    "detach": "ALTER TABLE p DETACH PARTITION p2025 CONCURRENTLY",
    "reindex-schema": "REINDEX SCHEMA s",
}


@pytest.mark.parametrize("name", STATEMENTS)
def test_refused_beside_others_and_run_alone_without_transaction(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any], name: str
) -> None:
    """Beside another statement: exit 5 naming the line, and not even the first file applied.
    Alone in its file: it runs without a transaction and is recorded so."""
    statement = STATEMENTS[name]
    mixed = write(
        tmp_path / "mixed",
        {"0001_setup.sql": SETUP, "0002_it.sql": f"CREATE TABLE y (id int);\n{statement};\n"},
    )
    refused = run_cli("migrate", "--migrations", str(mixed), "--no-verify", url=url)
    assert refused.code == 5, refused.stdout
    assert refused.finished["status"] == "refused"
    [finding] = refused.named("preflight.error")
    assert (finding["rule"], finding["line"]) == ("nontransactional-statement", 2)
    assert not table_exists(admin, "s.x") and history(admin) == []

    alone = write(tmp_path / "alone", {"0001_setup.sql": SETUP, "0002_it.sql": f"{statement};\n"})
    applied = run_cli("migrate", "--migrations", str(alone), "--no-verify", url=url)
    assert applied.code == 0, applied.stdout
    assert [r[1:] for r in history(admin)] == [("applied", "transaction"), ("applied", "no-transaction")]


def test_enum_value_used_in_the_file_that_adds_it_is_refused(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """ADD VALUE then a use of it in one file would fail at run time with 55P04, after the files
    before it committed; preflight refuses the batch instead, and the split files apply."""
    write(
        tmp_path / "one",
        {
            "0001_setup.sql": SETUP,
            "0002_meh.sql": "ALTER TYPE mood ADD VALUE 'meh';\nINSERT INTO feelings VALUES (1, 'meh');\n",
        },
    )
    refused = run_cli("migrate", "--migrations", str(tmp_path / "one"), "--no-verify", url=url)
    assert refused.code == 5, refused.stdout
    [finding] = refused.named("preflight.error")
    assert (finding["rule"], finding["line"]) == ("enum-value-used-before-commit", 2)
    assert "own" in finding["fix"]
    assert history(admin) == [] and not table_exists(admin, "feelings")

    write(
        tmp_path / "split",
        {
            "0001_setup.sql": SETUP,
            "0002_meh.sql": "ALTER TYPE mood ADD VALUE 'meh';\n",
            "0003_use.sql": "INSERT INTO feelings VALUES (1, 'meh');\n",
        },
    )
    applied = run_cli("migrate", "--migrations", str(tmp_path / "split"), "--no-verify", url=url)
    assert applied.code == 0, applied.stdout
    assert admin.execute("SELECT m::text FROM feelings").fetchall() == [("meh",)]
