"""core/mask.py: literal values never reach the output, the shape of statements does."""

from __future__ import annotations

from release_runner.core import mask
from tests.conftest import migration_value


def test_statements_keep_their_shape_and_lose_their_constants() -> None:
    masked = mask.statement("UPDATE users SET token = 'sk_live_123' WHERE id = 42")
    assert "sk_live_123" not in masked and "42" not in masked
    assert masked.startswith("UPDATE users SET token = $1")


def test_a_statement_that_does_not_parse_is_masked_by_its_quotes() -> None:
    assert "hunter2" not in mask.statement("CREATE ROLE r PASSWORD 'hunter2' LOGIN oops(")


def test_server_messages_lose_the_statement_constants_and_row_values() -> None:
    """A server message echoes the statement's constants and DETAIL echoes row values."""
    statement = migration_value("1", "CREATE ROLE app PASSWORD 'hunter22';").statements[0]
    values = mask.constants(statement.node)
    assert values == ["hunter22"]
    assert (
        mask.message('role "app" password "hunter22" rejected', values)
        == 'role "app" password "[value]" rejected'
    )
    detail = mask.message("Key (email)=(a@b.example) already exists.", [])
    assert detail == "Key (email)=([values]) already exists."
    assert mask.message("Failing row contains (1, secret).", []) == "Failing row contains ([values])."


def test_literals_of_text_that_does_not_parse() -> None:
    assert mask.literals("INSERT INTO t VALUES ('abc', 'x', 'longer one'") == ["longer one", "abc"]
