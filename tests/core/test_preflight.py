"""Preflight rules, table-driven over small SQL files: the finding, its position and its
message. Plus the real corpus sets (skipped without ../shared): no errors. Pure: no server."""

from __future__ import annotations

from pathlib import Path

import pytest

from release_runner.core import lock_ahead
from release_runner.core.migrations import read_directory
from release_runner.core.preflight import Prepared, prepare, prepare_all, release_hits
from tests.conftest import CORPUS, ROOT, migration_value, write

EXISTING = "-- existing table t(a int, b int) is created elsewhere\n"

# (file text, rule, severity, line, column, words in the message)
CASES = [
    ("SELECT 1;\nSELEC 2;\n", "syntax-error", "error", 2, 1, "syntax error"),
    ("SELECT 1;\n\\set x 1\nSELECT 2;\n", "psql-meta-command", "error", 2, 1, "psql meta-command"),
    (
        "CREATE TABLE u (id int);\nCREATE INDEX CONCURRENTLY u_id ON u (id);\n",
        "nontransactional-statement",
        "error",
        2,
        1,
        "file of its own",
    ),
    ("SELECT 1;\nDROP INDEX CONCURRENTLY i;\n", "nontransactional-statement", "error", 2, 1, "transaction"),
    (
        "SELECT 1;\nREINDEX INDEX CONCURRENTLY i;\n",
        "nontransactional-statement",
        "error",
        2,
        1,
        "transaction",
    ),
    ("SELECT 1;\nVACUUM t;\n", "nontransactional-statement", "error", 2, 1, "transaction"),
    *(
        (f"SELECT 1;\n{statement};\n", "nontransactional-statement", "error", 2, 1, "transaction")
        for statement in (
            "ALTER TABLE p DETACH PARTITION c CONCURRENTLY",
            "REINDEX SCHEMA s",
            "REINDEX DATABASE d",
            "REINDEX SYSTEM d",
            "CLUSTER",
            "ALTER DATABASE d SET TABLESPACE t",
            "ALTER SUBSCRIPTION s REFRESH PUBLICATION",
            "DROP SUBSCRIPTION s",
        )
    ),
    (
        "-- release-runner: allow add-enum-value\nALTER TYPE mood ADD VALUE 'meh';\nUPDATE t SET m = 'meh' WHERE a = 1;\n",
        "enum-value-used-before-commit",
        "error",
        3,
        1,
        "55P04",
    ),
    ("ALTER TYPE mood ADD VALUE 'meh';\n", "add-enum-value", "warning", 1, 1, "old Prisma client"),
    ("ALTER TABLE t ALTER a DROP NOT NULL;\n", "drop-not-null", "warning", 1, 1, "first NULL"),
    (
        "DO $$ BEGIN EXECUTE 'ALTER TABLE t DROP COLUMN a'; END $$;\n",
        "do-block-changes-schema",
        "warning",
        1,
        1,
        "cannot read",
    ),
    ("SELECT 1;\nCREATE DATABASE x;\n", "nontransactional-statement", "error", 2, 1, "transaction"),
    (
        "SELECT 1;\nALTER SYSTEM SET work_mem = '1MB';\n",
        "nontransactional-statement",
        "error",
        2,
        1,
        "transaction",
    ),
    (
        "-- release-runner: no-transaction\nSELECT 1;\nSELECT 2;\n",
        "no-transaction-multiple-statements",
        "error",
        3,
        1,
        "exactly one statement",
    ),
    ("BEGIN;\nSELECT 1;\nCOMMIT;\n", "transaction-control", "error", 1, 1, "owns the transaction"),
    ("SELECT 1;\nSAVEPOINT s;\n", "transaction-control", "error", 2, 1, "owns the transaction"),
    ("COPY t FROM STDIN;\n", "copy-from-stdin", "error", 1, 1, "COPY FROM STDIN"),
    (
        EXISTING + "CREATE INDEX t_a ON t (a);\n",
        "create-index-not-concurrently",
        "warning",
        2,
        1,
        "SHARE lock",
    ),
    (
        EXISTING + "ALTER TABLE t ADD c int NOT NULL;\n",
        "add-column-not-null-without-default",
        "warning",
        2,
        1,
        "DEFAULT",
    ),
    (EXISTING + "ALTER TABLE t ALTER a SET NOT NULL;\n", "set-not-null", "warning", 2, 1, "NOT VALID"),
    (EXISTING + "ALTER TABLE t ALTER a TYPE bigint;\n", "change-column-type", "warning", 2, 1, "rewrite"),
    (
        EXISTING + "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id);\n",
        "add-foreign-key-validated",
        "warning",
        2,
        1,
        "NOT VALID",
    ),
    (
        EXISTING + "ALTER TABLE t ADD CONSTRAINT k UNIQUE (a);\n",
        "add-unique-constraint",
        "warning",
        2,
        1,
        "USING INDEX",
    ),
    ("DROP TABLE t;\n", "drop-table", "warning", 1, 1, "destroys data"),
    (EXISTING + "ALTER TABLE t DROP COLUMN b;\n", "drop-column", "warning", 2, 1, "destroys data"),
    ("TRUNCATE t;\n", "truncate", "warning", 1, 1, "destroys data"),
    (EXISTING + "ALTER TABLE t RENAME TO v;\n", "rename-table", "warning", 2, 1, "old name"),
    (EXISTING + "ALTER TABLE t RENAME COLUMN a TO z;\n", "rename-column", "warning", 2, 1, "old name"),
    (
        EXISTING + "ALTER TABLE t ADD id uuid DEFAULT gen_random_uuid();\n",
        "volatile-default-rewrite",
        "warning",
        2,
        1,
        "rewrites",
    ),
]


def _prepare(tmp_path: Path, text: str, strict_lint: bool = False) -> Prepared:
    write(tmp_path, {"0001_case.sql": text})
    return prepare(read_directory(tmp_path).migrations[0], strict_lint=strict_lint)


@pytest.mark.parametrize(
    ("text", "rule", "severity", "line", "column", "words"), CASES, ids=[c[1] for c in CASES]
)
def test_rule(
    tmp_path: Path, text: str, rule: str, severity: str, line: int, column: int, words: str
) -> None:
    """Each rule fires with its severity, position and message."""
    findings = _prepare(tmp_path, text).findings
    assert {f.rule for f in findings} == {rule}, [f.describe() for f in findings]
    finding = findings[0]
    assert finding.severity == severity
    assert (finding.line, finding.column) == (line, column)
    assert words in finding.describe()
    assert f"0001_case.sql:{line}:{column}" in finding.describe()


def test_syntax_error_names_the_override(tmp_path: Path) -> None:
    """A syntax error names the directive for statements the bundled parser does not know."""
    finding = _prepare(tmp_path, "SELEC 1;").findings[0]
    assert "allow parse-error" in finding.fix


def test_single_concurrent_statement_runs_without_transaction(tmp_path: Path) -> None:
    """Automatic: a file whose only statement cannot run in a transaction."""
    prepared = _prepare(tmp_path, "-- why\nCREATE INDEX CONCURRENTLY i ON t (a);\n")
    assert prepared.findings == []
    assert not prepared.transactional and prepared.automatic_no_transaction


def test_tables_created_in_the_batch_do_not_warn(tmp_path: Path) -> None:
    """Locking a table nobody uses yet hurts nobody: no warning for tables the batch creates."""
    write(
        tmp_path,
        {
            "0001_a.sql": "CREATE TABLE n (a int);\nCREATE INDEX n_a ON n (a);\n",
            "0002_b.sql": "ALTER TABLE n ALTER a SET NOT NULL;\nALTER TABLE n ADD CONSTRAINT k UNIQUE (a);\n",
        },
    )
    assert [p.findings for p in prepare_all(read_directory(tmp_path).migrations)] == [[], []]


def test_allow_per_file_and_per_statement(tmp_path: Path) -> None:
    """A header allow silences the whole file, a comment above a statement only that statement."""
    text = "-- release-runner: allow truncate\nTRUNCATE t;\n-- release-runner: allow drop-table\nDROP TABLE t;\nDROP TABLE u;\n"
    findings = _prepare(tmp_path, text).findings
    assert [(f.rule, f.line) for f in findings] == [("drop-table", 5)]


def test_strict_lint_turns_warnings_into_errors(tmp_path: Path) -> None:
    """--strict-lint makes warnings refuse the batch."""
    assert [f.severity for f in _prepare(tmp_path, "TRUNCATE t;", strict_lint=True).findings] == ["error"]


def test_prisma_outer_transaction_is_unwrapped(tmp_path: Path) -> None:
    """Prisma's enum-recreate pattern: statements, then BEGIN ... COMMIT. Runs as one transaction."""
    write(
        tmp_path,
        {
            "migration_lock.toml": "",
            "1_enum/migration.sql": "UPDATE t SET a = 1;\n-- AlterEnum\nBEGIN;\nCREATE TYPE e AS ENUM ('x');\nCOMMIT;\n",
        },
    )
    prepared = prepare(read_directory(tmp_path).migrations[0])
    assert prepared.unwrapped and prepared.transactional
    assert [s.kind for s in prepared.statements] == ["UpdateStmt", "CreateEnumStmt"]
    assert prepared.errors == []


def test_example_sql_has_no_errors() -> None:
    """The shipped sql/ passes preflight, with its one automatic no-transaction file."""
    prepared = prepare_all(read_directory(ROOT / "sql").migrations)
    assert [f.describe() for p in prepared for f in p.errors] == []
    assert [p.transaction_mode for p in prepared].count("no-transaction") == 1


CORPUS_SETS = [
    "prisma-triggerdev",
    "prisma-documenso",
    "prisma-formbricks",
    "drizzle-dokploy",
    "drizzle-ai-chatbot",
    "drizzle-triggerdev-agent",
]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")
@pytest.mark.parametrize("name", CORPUS_SETS)
def test_real_sets_have_no_preflight_errors(name: str) -> None:
    """Real migration sets pass preflight as they are, and the release-phase rules and
    lock-ahead read every statement of them without failing."""
    prepared = prepare_all(read_directory(CORPUS / name).migrations)
    assert [f.describe() for p in prepared for f in p.errors] == []
    release_hits(prepared)
    for item in prepared:
        lock_ahead.block(item.locks_ahead, 5000)
    if name == "prisma-triggerdev":
        # 56 CREATE and 15 DROP INDEX CONCURRENTLY files run without a transaction.
        assert sum(not p.transactional for p in prepared) == 71
        assert sum(p.unwrapped for p in prepared) == 13


def test_new_enum_value_rules(tmp_path: Path) -> None:
    """A value added to a type created in the same file may be used (the server allows it); a
    later file may always use it; a constant that is not a use is allowed by a comment."""
    created = "CREATE TYPE mood AS ENUM ('ok');\nALTER TYPE mood ADD VALUE 'meh';\nSELECT 'meh'::mood;\n"
    assert _prepare(tmp_path / "a", created).findings == []
    write(
        tmp_path / "b",
        {"0001_add.sql": "ALTER TYPE mood ADD VALUE 'meh';\n", "0002_use.sql": "UPDATE t SET m = 'meh';\n"},
    )
    prepared = prepare_all(read_directory(tmp_path / "b").migrations)
    assert [[f.rule for f in p.findings] for p in prepared] == [["add-enum-value"], []]
    allowed = (
        "-- release-runner: allow add-enum-value\nALTER TYPE mood ADD VALUE 'meh';\n"
        "-- release-runner: allow enum-value-used-before-commit\nCOMMENT ON TABLE t IS 'meh';\n"
    )
    assert _prepare(tmp_path / "c", allowed).findings == []


# Statement kinds a migration may hold, beyond the ones the rules are about: the release-phase
# rules and lock-ahead must read each without failing, whatever shape its parse tree has.
EVERY_KIND = """
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TYPE pair AS (a int, b text);
CREATE TYPE mood AS ENUM ('a', 'b');
ALTER TYPE mood ADD VALUE 'c' BEFORE 'a';
ALTER TYPE mood RENAME VALUE 'a' TO 'z';
ALTER TYPE pair ADD ATTRIBUTE c int;
ALTER DOMAIN posint ADD CONSTRAINT small CHECK (VALUE < 100) NOT VALID;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
DROP EXTENSION IF EXISTS pgcrypto;
CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql RETURN x + 1;
DROP FUNCTION IF EXISTS f(int), g(text);
DROP AGGREGATE IF EXISTS agg(int);
DROP TYPE IF EXISTS pair, mood CASCADE;
DROP DOMAIN IF EXISTS posint;
DROP SEQUENCE IF EXISTS s1, s2;
DROP OWNED BY nobody;
DROP POLICY IF EXISTS p ON t;
DROP RULE IF EXISTS r ON t;
DROP TRIGGER IF EXISTS tr ON s.t;
COMMENT ON TABLE t IS 'x';
COMMENT ON COLUMN t.a IS NULL;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO PUBLIC;
REVOKE ALL ON t FROM PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO PUBLIC;
ALTER TABLE t OWNER TO CURRENT_USER;
ALTER INDEX i RENAME TO j;
ALTER SEQUENCE s1 RENAME TO s3;
ALTER SEQUENCE s3 OWNED BY t.a;
ALTER FUNCTION f(int) RENAME TO g;
ALTER FUNCTION g(int) SET SCHEMA s;
ALTER VIEW v ALTER COLUMN a SET DEFAULT 1;
ALTER MATERIALIZED VIEW mv SET SCHEMA s;
REFRESH MATERIALIZED VIEW mv;
CREATE MATERIALIZED VIEW mv2 AS SELECT 1 AS one;
CREATE OR REPLACE VIEW v2 AS SELECT 1 AS one;
CREATE TABLE t2 (LIKE t INCLUDING ALL);
CREATE TABLE t3 () INHERITS (t);
CREATE TABLE t4 AS SELECT * FROM t;
SELECT * INTO t5 FROM t;
ALTER TABLE t ALTER COLUMN a TYPE text[] USING ARRAY[a];
ALTER TABLE t ALTER COLUMN a TYPE pg_catalog.varchar(10) COLLATE "C";
ALTER TABLE t ADD COLUMN z int REFERENCES s.other ON DELETE CASCADE;
ALTER TABLE t DROP CONSTRAINT IF EXISTS c, DROP COLUMN IF EXISTS d;
ALTER TABLE IF EXISTS ONLY t RENAME CONSTRAINT c TO d;
ALTER TABLE t SET (autovacuum_enabled = false), SET LOGGED;
ALTER TABLE t REPLICA IDENTITY USING INDEX i;
ALTER TABLE t ATTACH PARTITION t6 DEFAULT;
DO $$ BEGIN PERFORM 1; END $$;
CREATE SCHEMA s2 AUTHORIZATION CURRENT_USER CREATE TABLE st (id int);
ALTER SCHEMA s2 OWNER TO CURRENT_USER;
CREATE PUBLICATION pub FOR TABLE t;
SET search_path TO s, public;
RESET search_path;
NOTIFY channel, 'x';
LOCK TABLE t IN SHARE MODE;
SELECT pg_advisory_xact_lock(1);
INSERT INTO t SELECT * FROM t2 ON CONFLICT (id) DO UPDATE SET a = EXCLUDED.a;
WITH moved AS (DELETE FROM t RETURNING *) INSERT INTO t2 SELECT * FROM moved;
MERGE INTO t USING t2 ON t.id = t2.id WHEN NOT MATCHED THEN INSERT VALUES (t2.id);
"""


def test_every_statement_kind_reads_without_failing(tmp_path: Path) -> None:
    """The release-phase rules and lock-ahead over many statement kinds: no exception, and the
    names they report are names (no parse-tree fragments)."""
    prepared = _prepare(tmp_path, EVERY_KIND)
    assert prepared.errors == [], [f.describe() for f in prepared.errors]
    for _, hit in release_hits([prepared]):
        assert hit.name and "{" not in hit.name and "None" not in hit.name
    for lock in prepared.locks_ahead:
        assert all(part and part != "None" for part in lock.name), lock
    assert lock_ahead.block(prepared.locks_ahead, 5000)


def test_after_a_search_path_change_only_qualified_names_are_looked_up(tmp_path: Path) -> None:
    """Once a file sets search_path, an unqualified name may mean another object than it does
    where the runner looks it up: lock-ahead and the release-phase rules leave such names to
    the server, and keep the names before the change and the qualified ones."""
    prepared = _prepare(
        tmp_path,
        "ALTER TABLE before ADD b int;\nSET search_path = app;\nALTER TABLE t DROP COLUMN x;\n"
        "ALTER TABLE app.t2 DROP COLUMN y;\nSELECT set_config('search_path', 'other', true);\n",
    )
    assert {lock.name for lock in prepared.locks_ahead} == {("before",), ("app", "t2")}
    hits = release_hits([prepared])
    assert [hit.name for _, hit in hits] == ["app.t2"]


def test_an_empty_migration_is_a_warning() -> None:
    """Only comments, as `new` writes a file: recorded as applied and doing nothing, so said."""
    (item,) = prepare_all([migration_value("1", "-- what this migration does\n")])
    assert [(f.rule, f.severity, f.line) for f in item.findings] == [("empty-migration", "warning", 1)]
