"""core/lock_ahead.py, pure: which table locks a file's statements take (that they are exactly
the server's is checked on a server in tests/db/test_lock_ahead.py)."""

from __future__ import annotations

from release_runner.core.lock_ahead import block, needed
from tests.conftest import migration_value


def _locks(sql: str) -> list[tuple[tuple[str, ...], str, str]]:
    return [(lock.name, lock.mode, lock.via) for lock in needed(migration_value("1", sql).statements)]


def test_the_strongest_mode_per_table_in_first_use_order() -> None:
    """ROW EXCLUSIVE for the UPDATE gives way to the ACCESS EXCLUSIVE a later ALTER needs on the
    same table; dropping a column also locks what a foreign key on it references."""
    sql = "UPDATE a SET x = 1;\nALTER TABLE b ADD c int;\nALTER TABLE a DROP COLUMN y;\n"
    assert _locks(sql) == [
        (("a",), "ACCESS EXCLUSIVE", "table"),
        (("b",), "ACCESS EXCLUSIVE", "table"),
        (("a",), "ACCESS EXCLUSIVE", "references-column"),
    ]


def test_an_index_build_takes_share_and_a_new_table_takes_nothing() -> None:
    assert _locks("CREATE INDEX i ON t (a);") == [(("t",), "SHARE", "table")]
    assert _locks("CREATE TABLE n (id int);") == []


def test_after_a_search_path_change_only_qualified_names() -> None:
    assert _locks("SET search_path = app;\nALTER TABLE t ADD a int;\nALTER TABLE app.u ADD b int;\n") == [
        (("app", "u"), "ACCESS EXCLUSIVE", "table")
    ]


def test_the_block_is_one_do_statement_or_nothing() -> None:
    locks = needed(migration_value("1", "ALTER TABLE t ADD a int;").statements)
    text = block(locks, 5000)
    assert text is not None and text.startswith("DO $release_runner_lock_ahead$") and '"t"' in text
    assert block([], 5000) is None
