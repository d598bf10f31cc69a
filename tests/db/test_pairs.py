"""The pair suite: for every kind of object verification compares, a schema `a` and a variant
`b` that differs in one way. `a` checked against itself finds nothing at all; `a` against `b`
and `b` against `a` each find a failing difference of that kind of object: a change made by hand
is caught whichever way it goes."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import psycopg
import pytest

from release_runner.core import drift, schema
from release_runner.core.objects import Objects, objects_from_catalog
from release_runner.db import catalog, connection
from tests.conftest import Server

TABLE = "CREATE TABLE t (id int PRIMARY KEY, note text);\n"
TRIGGER = (
    TABLE + "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;\n"
    "CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION touch();\n"
)
PARTITIONED = (
    "CREATE TABLE m (id int, at date) PARTITION BY RANGE (at);\n"
    "CREATE TABLE m_2024 PARTITION OF m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');\n"
    "CREATE TABLE m_2025 PARTITION OF m FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');\n"
)
FUNCTION = "CREATE FUNCTION f(a int DEFAULT 1) RETURNS int LANGUAGE sql RETURN a + 1;\n"
VIEW = TABLE + "CREATE VIEW v AS SELECT id, note FROM t WHERE id > 0;\n"

# (case, a, b, the object type whose difference must be found)
PAIRS = [
    ("column type", TABLE, TABLE.replace("note text", "note varchar(20)"), "column"),
    ("column default", TABLE, TABLE.replace("note text", "note text DEFAULT 'x'"), "column"),
    ("column not null", TABLE, TABLE.replace("note text", "note text NOT NULL"), "column"),
    (
        "check constraint",
        TABLE + "ALTER TABLE t ADD CONSTRAINT c CHECK (id > 0);",
        TABLE + "ALTER TABLE t ADD CONSTRAINT c CHECK (id > 1);",
        "constraint",
    ),
    (
        "foreign key action",
        TABLE + "CREATE TABLE u (t_id int REFERENCES t ON DELETE CASCADE);",
        TABLE + "CREATE TABLE u (t_id int REFERENCES t ON DELETE RESTRICT);",
        "constraint",
    ),
    (
        "index predicate",
        TABLE + "CREATE INDEX i ON t (note);",
        TABLE + "CREATE INDEX i ON t (note) WHERE id > 0;",
        "index",
    ),
    ("enum labels", "CREATE TYPE e AS ENUM ('a', 'b');", "CREATE TYPE e AS ENUM ('a', 'b', 'c');", "enum"),
    ("trigger replica", TRIGGER, TRIGGER + "ALTER TABLE t ENABLE REPLICA TRIGGER tr;", "trigger"),
    (
        "trigger always",
        TRIGGER + "ALTER TABLE t DISABLE TRIGGER tr;",
        TRIGGER + "ALTER TABLE t ENABLE ALWAYS TRIGGER tr;",
        "trigger",
    ),
    ("partition detached", PARTITIONED, PARTITIONED + "ALTER TABLE m DETACH PARTITION m_2025;", "table"),
    ("partition bound", PARTITIONED, PARTITIONED.replace("'2026-01-01'", "'2027-01-01'"), "table"),
    (
        "partition key",
        PARTITIONED,
        PARTITIONED.replace("RANGE (at)", "RANGE (at, id)")
        .replace("('2024-01-01') TO ('2025-01-01')", "('2024-01-01', 0) TO ('2025-01-01', 0)")
        .replace("('2025-01-01') TO ('2026-01-01')", "('2025-01-01', 0) TO ('2026-01-01', 0)"),
        "table",
    ),
    (
        "partitioned parent row level security",
        PARTITIONED,
        PARTITIONED + "ALTER TABLE m ENABLE ROW LEVEL SECURITY;",
        "table",
    ),
    ("unlogged", TABLE, TABLE + "ALTER TABLE t SET UNLOGGED;", "table"),
    (
        "force row level security",
        TABLE + "ALTER TABLE t ENABLE ROW LEVEL SECURITY;",
        TABLE + "ALTER TABLE t ENABLE ROW LEVEL SECURITY; ALTER TABLE t FORCE ROW LEVEL SECURITY;",
        "table",
    ),
    ("replica identity", TABLE, TABLE + "ALTER TABLE t REPLICA IDENTITY FULL;", "table"),
    (
        "inheritance",
        TABLE + "CREATE TABLE c () INHERITS (t);",
        TABLE + "CREATE TABLE c () INHERITS (t); ALTER TABLE c NO INHERIT t;",
        "table",
    ),
    (
        "policy",
        TABLE + "CREATE POLICY p ON t USING (id > 0);",
        TABLE + "CREATE POLICY p ON t USING (id > 1);",
        "policy",
    ),
    ("rule", TABLE, TABLE + "CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING;", "rule"),
    ("sql-standard body", FUNCTION, FUNCTION.replace("a + 1", "a + 2"), "function"),
    (
        "begin atomic body",
        "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;",
        "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 2; END;",
        "function",
    ),
    ("strict", FUNCTION, FUNCTION + "ALTER FUNCTION f STRICT;", "function"),
    (
        "function search_path",
        FUNCTION,
        FUNCTION + "ALTER FUNCTION f SET search_path = pg_catalog;",
        "function",
    ),
    ("parallel", FUNCTION, FUNCTION + "ALTER FUNCTION f PARALLEL SAFE;", "function"),
    ("argument default", FUNCTION, FUNCTION.replace("DEFAULT 1", "DEFAULT 2"), "function"),
    (
        "whitespace in a literal",
        "CREATE FUNCTION h() RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN 'a b'; END $$;",
        "CREATE FUNCTION h() RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN 'a  b'; END $$;",
        "function",
    ),
    (
        "aggregate",
        "CREATE AGGREGATE total(int) (sfunc = int4pl, stype = int, initcond = '0');",
        "CREATE AGGREGATE total(int) (sfunc = int4pl, stype = int, initcond = '1');",
        "function",
    ),
    (
        "domain check",
        "CREATE DOMAIN d AS int CHECK (VALUE > 0);",
        "CREATE DOMAIN d AS int CHECK (VALUE > 1);",
        "domain",
    ),
    ("domain not null", "CREATE DOMAIN d AS int;", "CREATE DOMAIN d AS int NOT NULL;", "domain"),
    (
        "composite attribute",
        "CREATE TYPE pair AS (a int, b text);",
        "CREATE TYPE pair AS (a int, b varchar);",
        "type",
    ),
    ("view definition", VIEW, VIEW.replace("id > 0", "id > 1"), "view"),
    ("view security_invoker", VIEW, VIEW + "ALTER VIEW v SET (security_invoker = true);", "view"),
    (
        "view check option",
        VIEW,
        VIEW.replace("CREATE VIEW v AS", "CREATE VIEW v WITH (check_option = local) AS"),
        "view",
    ),
    ("sequence maxvalue", "CREATE SEQUENCE s;", "CREATE SEQUENCE s MAXVALUE 1000;", "sequence"),
    ("sequence cycle", "CREATE SEQUENCE s;", "CREATE SEQUENCE s CYCLE;", "sequence"),
    (
        "sequence owned by",
        TABLE + "CREATE SEQUENCE s;",
        TABLE + "CREATE SEQUENCE s OWNED BY t.id;",
        "sequence",
    ),
    (
        "identity options",
        "CREATE TABLE g (id int GENERATED ALWAYS AS IDENTITY);",
        "CREATE TABLE g (id int GENERATED ALWAYS AS IDENTITY (START WITH 100));",
        "column",
    ),
    ("extension", "", "CREATE EXTENSION pg_trgm;", "extension"),
    ("grant", TABLE, TABLE + "GRANT SELECT ON t TO PUBLIC;", "table"),
    ("owner", TABLE, TABLE + "ALTER TABLE t OWNER TO pg_monitor;", "table"),
    ("revoke on a function", FUNCTION, FUNCTION + "REVOKE EXECUTE ON FUNCTION f FROM PUBLIC;", "function"),
    ("schema privilege", "CREATE SCHEMA s;", "CREATE SCHEMA s; GRANT USAGE ON SCHEMA s TO PUBLIC;", "schema"),
    ("public schema privilege", "", "GRANT CREATE ON SCHEMA public TO PUBLIC;", "schema"),
    (
        "sequence privilege",
        "CREATE SEQUENCE s;",
        "CREATE SEQUENCE s; GRANT USAGE ON SEQUENCE s TO PUBLIC;",
        "sequence",
    ),
]


@pytest.fixture(scope="module")
def build(server: Server) -> Callable[[str], Objects]:
    """Build a schema from SQL in a database of its own and read it back as verify does."""

    def objects(sql: str) -> Objects:
        name = f"pair_{secrets.token_hex(5)}"
        connection.create_database(server.admin, name)
        try:
            with psycopg.connect(connection.with_dbname(server.admin, name), autocommit=True) as conn:
                if sql:
                    conn.execute(sql)
                return objects_from_catalog(catalog.fetch_catalog(conn, "release_runner"))
        finally:
            connection.drop_database(server.admin, name)

    return objects


@pytest.mark.parametrize(("case", "a", "b", "kind"), PAIRS, ids=[pair[0] for pair in PAIRS])
def test_a_pair_is_caught_both_ways_and_a_is_clean(
    build: Callable[[str], Objects], case: str, a: str, b: str, kind: str
) -> None:
    """a vs a: no difference of any kind; a vs b and b vs a: a difference of `kind` reported,
    failing in at least one direction (an object only in the database is an extra, a warning)."""
    first, again, other = build(a), build(a), build(b)
    assert drift.compare(first, again) == [], case
    failing_somewhere = False
    for expected, actual in ((first, other), (other, first)):
        found = drift.compare(expected, actual)
        assert kind in {m.object_type for m in found}, (case, [m.describe() for m in found])
        failing_somewhere |= any(m.fails and m.object_type == kind for m in found)
    assert failing_somewhere, case


def test_a_constraint_validated_by_hand_warns_and_a_rename_is_named(
    build: Callable[[str], Objects],
) -> None:
    """A NOT VALID constraint validated by hand is stricter, a warning; a renamed constraint
    with the same definition is reported naming both names, a warning."""
    base = TABLE + "ALTER TABLE t ADD CONSTRAINT positive CHECK (id > 0) NOT VALID;\n"
    expected = build(base)
    validated = drift.compare(expected, build(base + "ALTER TABLE t VALIDATE CONSTRAINT positive;"))
    assert [(m.kind, m.fails) for m in validated] == [("validated", False)]
    valid = TABLE + "ALTER TABLE t ADD CONSTRAINT positive CHECK (id > 0);\n"
    renamed = drift.compare(
        build(valid), build(valid + "ALTER TABLE t RENAME CONSTRAINT positive TO id_positive;")
    )
    assert [(m.kind, m.fails) for m in renamed] == [("renamed", False)]
    assert "positive" in renamed[0].describe() and "id_positive" in renamed[0].describe()


def test_privileges_can_be_left_out(build: Callable[[str], Objects]) -> None:
    """--ignore-privileges: owners and grants that differ are not compared; a GRANT undone by a
    REVOKE is no difference even when compared."""
    granted = build(TABLE + "GRANT SELECT ON t TO PUBLIC; ALTER TABLE t OWNER TO pg_monitor;")
    assert drift.compare(schema.without_privileges(build(TABLE)), schema.without_privileges(granted)) == []
    assert (
        drift.compare(
            build(TABLE), build(TABLE + "GRANT SELECT ON t TO PUBLIC; REVOKE SELECT ON t FROM PUBLIC;")
        )
        == []
    )
