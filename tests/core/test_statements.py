"""core/statements.py: a file cut into statements by the real parser, with positions and the
rules an `allow` comment above a statement switches off."""

from __future__ import annotations

import pytest

from release_runner.core.statements import (
    LineIndex,
    SqlSyntaxError,
    dotted_name,
    node,
    relation_name,
    split_statements,
)


def test_statements_carry_their_line_and_column() -> None:
    text = "-- header\nCREATE TABLE a (id int);\n\n  SELECT 'x;y';\n"
    first, second = split_statements(text, 0, LineIndex(text))
    assert (first.line, first.column, first.kind) == (2, 1, "CreateStmt")
    assert (second.line, second.column, second.text) == (4, 3, "SELECT 'x;y'")


def test_a_syntax_error_names_its_line_and_column() -> None:
    text = "SELECT 1;\nSELEC 2;\n"
    with pytest.raises(SqlSyntaxError) as raised:
        split_statements(text, 0, LineIndex(text))
    assert (raised.value.line, raised.value.column) == (2, 1)


def test_allow_parse_error_lets_the_scanner_cut_alone() -> None:
    text = "SELEC 1;\nSELECT 2;\n"
    statements = split_statements(text, 0, LineIndex(text), allow_parse_error=True)
    assert [s.text for s in statements] == ["SELEC 1", "SELECT 2"] and statements[0].node is None


def test_an_allow_comment_applies_to_the_statement_below() -> None:
    text = "-- release-runner: allow drop-table, truncate\nDROP TABLE t;\nDROP TABLE u;\n"
    first, second = split_statements(text, 0, LineIndex(text))
    assert first.allow == {"drop-table", "truncate"} and second.allow == frozenset()


def test_names_as_written() -> None:
    text = "ALTER TABLE s.t ADD a int;\n"
    (statement,) = split_statements(text, 0, LineIndex(text))
    kind, body = node(statement)
    assert kind == "AlterTableStmt" and relation_name(body["relation"]) == "s.t"
    assert dotted_name([{"String": {"sval": "s"}}, {"String": {"sval": "t"}}]) == "s.t"


def test_line_index_counts_characters_not_bytes() -> None:
    text = "é = 1\nx"
    index = LineIndex(text)
    assert index.locate(len("é = ".encode())) == (1, 5)
    assert index.locate(len("é = 1\n".encode())) == (2, 1)


DEEP = {
    "union-all seed": "INSERT INTO s " + " UNION ALL ".join(f"SELECT {i}, 'v{i}'" for i in range(1000)),
    "text chain": "UPDATE s SET b = " + " || ".join(f"'x{i}'" for i in range(500)),
    "plus chain": "SELECT " + " + ".join(str(i) for i in range(20000)),
    "nested calls": "SELECT " + "abs(" * 400 + "1" + ")" * 400,
}


@pytest.mark.parametrize("name", DEEP)
def test_a_statement_too_deep_to_read_is_kept_unread_never_a_crash(name: str) -> None:
    """Whatever the server parses, the runner splits: a statement nested past Python's recursion
    limit (or libpg_query's own) keeps its text, position and first-word kind, says why it is
    unread, and leaves the statements around it parsed."""
    text = f"CREATE TABLE s (a int, b text);\n{DEEP[name]};\nSELECT 'after;';\n"
    before, deep, after = split_statements(text, 0, LineIndex(text))
    assert before.kind == "CreateStmt" and after.kind == "SelectStmt" and after.text == "SELECT 'after;'"
    assert deep.unread and deep.line == 2 and deep.text == DEEP[name]
    assert deep.kind == {"I": "InsertStmt", "U": "UpdateStmt", "S": "SelectStmt"}[DEEP[name][0]]
    assert node(deep)[1] == {}
