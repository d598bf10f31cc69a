"""core/nontransactional.py: what PostgreSQL refuses in a transaction block, read from parse
trees (the server's own refusal is checked in tests/db/test_transaction_blocks.py)."""

from __future__ import annotations

import pytest

from release_runner.core.nontransactional import enum_values_used_too_soon, refuses_transaction_block
from tests.conftest import migration_value


@pytest.mark.parametrize(
    ("sql", "refuses"),
    [
        ("CREATE INDEX CONCURRENTLY i ON t (a);", True),
        ("DROP INDEX CONCURRENTLY i;", True),
        ("VACUUM t;", True),
        ("CREATE DATABASE d;", True),
        ("ALTER SYSTEM SET work_mem = '1MB';", True),
        ("CREATE INDEX i ON t (a);", False),
        ("ALTER TYPE mood ADD VALUE 'x';", False),
    ],
)
def test_statements_that_refuse_a_block(sql: str, refuses: bool) -> None:
    (statement,) = migration_value("1", sql).statements
    assert refuses_transaction_block(statement) is refuses


def test_an_enum_value_used_in_the_file_that_adds_it() -> None:
    """A value added to an existing type cannot be used before the COMMIT; one added to a type
    created in the same file can."""
    used = migration_value("1", "ALTER TYPE mood ADD VALUE 'meh';\nSELECT 'meh'::mood;\n").statements
    assert [(s.line, name) for s, name in enum_values_used_too_soon(used)] == [(2, "mood")]
    created = migration_value(
        "1", "CREATE TYPE mood AS ENUM ('ok');\nALTER TYPE mood ADD VALUE 'meh';\nSELECT 'meh'::mood;\n"
    ).statements
    assert enum_values_used_too_soon(created) == []
