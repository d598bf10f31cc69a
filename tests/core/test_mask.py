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
        == 'role "app" password [value] rejected'
    )
    detail = mask.message("Key (email)=(a@b.example) already exists.", [])
    assert detail == "Key (email)=([values]) already exists."
    assert mask.message("Failing row contains (1, secret).", []) == "Failing row contains ([values])."


def test_literals_of_text_that_does_not_parse() -> None:
    assert mask.literals("INSERT INTO t VALUES ('abc', 'x', 'longer one'") == ["longer one", "abc"]


SECRET = "sk_live_9f8e"
# Messages from PostgreSQL's and libpq's message catalogues (the msgids, with a value where the
# server puts one): whatever the form, the value goes and the object names stay.
CATALOGUE = [
    ('invalid input syntax for type integer: "{v}"', []),
    ('invalid input syntax for type uuid: "{v}"', []),
    ("invalid input syntax for type json", []),
    ('Token "{v}" is invalid.', []),
    ('invalid input value for enum mood: "{v}"', []),
    ('value "{v}" is out of range for type integer', []),
    ('date/time field value out of range: "{v}"', []),
    ('invalid value "{v}" for "MM"', []),
    ('malformed array literal: "{v}"', []),
    ('invalid hexadecimal digit: "{v}"', []),
    ("Key (token)=({v}) already exists.", []),
    ("Key (token)=({v}) is duplicated.", []),
    ('Key (owner_id)=({v}) is not present in table "owners".', ["owners"]),
    ('Key (id)=({v}) is still referenced from table "orders".', ["orders"]),
    ("Failing row contains (1, {v}).x), null).", []),
    ('could not create unique index "users_token"', ["users_token"]),
    ('duplicate key value violates unique constraint "users_token_key"', ["users_token_key"]),
    ('new row for relation "users" violates check constraint "token_shape"', ["users", "token_shape"]),
    ('null value in column "token" of relation "users" violates not-null constraint', ["token", "users"]),
    ('column "token" of relation "users" does not exist', ["token", "users"]),
    ('unrecognized configuration parameter "work_mem2"', ["work_mem2"]),
    ('type "mood" does not exist', ["mood"]),
    ('unexpected spaces found in "pa {v}@db", use percent-encoded spaces (%20) instead', []),
    ('invalid integer value "{v}" for connection option "port"', ["port"]),
    ('password authentication failed for user "deployer"', ["deployer"]),
    ('connection to server at "10.0.0.5", port 5432 failed: Connection refused', ["10.0.0.5"]),
]


def test_every_value_the_server_quotes_is_masked_and_names_stay() -> None:
    """Server text is data until proven otherwise: a quoted text is kept only where a word that
    names an object kind stands right before it."""
    for template, names in CATALOGUE:
        masked = mask.message(template.format(v=SECRET), [])
        assert masked is not None and SECRET not in masked, template
        assert all(f'"{name}"' in masked for name in names), (template, masked)


def test_a_raise_is_recognised_by_its_context() -> None:
    assert mask.raised("PL/pgSQL function inline_code_block line 3 at RAISE")
    assert not mask.raised('SQL statement "UPDATE t SET a = 1"') and not mask.raised(None)
