"""core/outcome.py: what the catalog proves about a no-transaction index build or drop."""

from __future__ import annotations

import pytest

from release_runner.core.outcome import Outcome, advice, judge, judged_index
from tests.conftest import migration_value


@pytest.mark.parametrize(
    ("sql", "judged"),
    [
        ("CREATE INDEX CONCURRENTLY i ON t (a);", ("create", "i")),
        ('CREATE INDEX CONCURRENTLY "Big" ON s.t (a);', ("create", 's."Big"')),
        ("DROP INDEX CONCURRENTLY s.i;", ("drop", "s.i")),
        ("CREATE INDEX i ON t (a);", None),
        ("VACUUM t;", None),
    ],
)
def test_only_one_concurrent_index_statement_is_judged(sql: str, judged: tuple[str, str] | None) -> None:
    """The index's name as SQL writes it, for the catalog to look up."""
    assert judged_index(migration_value("1", sql).statements) == judged


@pytest.mark.parametrize(
    ("action", "valid", "outcome"),
    [
        ("create", True, Outcome.APPLIED),
        ("create", False, Outcome.INVALID),
        ("create", None, Outcome.NOT_APPLIED),
        ("drop", None, Outcome.APPLIED),
        ("drop", True, Outcome.NOT_APPLIED),
    ],
)
def test_the_catalog_state_decides(action: str, valid: bool | None, outcome: Outcome) -> None:
    assert judge(action, valid) is outcome


def test_advice_names_commands_that_run_as_printed() -> None:
    """A failed concurrent build's advice drops the INVALID index and forgets the row."""
    text = advice("0004", migration_value("0004", "CREATE INDEX CONCURRENTLY i ON t (a);").statements)
    assert "release-runner repair --forget 0004" in text and "DROP INDEX CONCURRENTLY IF EXISTS i" in text
