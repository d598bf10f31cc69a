"""core/runner_state.py: which statements release the runner lock or change the runner's own
schema (refused by preflight), and which only look alike."""

from __future__ import annotations

import pytest

from release_runner.core.preflight import prepare_all
from release_runner.core.runner_state import changes_runner_schema, releases_runner_lock
from tests.conftest import migration_value

RELEASES_LOCK = [
    "DISCARD ALL",
    "SELECT pg_advisory_unlock_all()",
    "SELECT pg_catalog.pg_advisory_unlock_all()",
    "INSERT INTO t SELECT 1 WHERE pg_advisory_unlock_all() IS NULL",
    "DO $$ BEGIN PERFORM pg_advisory_unlock_all(); END $$",
    "DO $$ BEGIN EXECUTE 'DISCARD   ALL'; END $$",
]
KEEPS_LOCK = [
    "DISCARD TEMP",
    "SELECT pg_advisory_unlock(42)",
    "DO $$ BEGIN PERFORM 1; END $$",
    "SELECT 'pg_advisory_unlock_all'",
]
CHANGES_SCHEMA = [
    "CREATE RULE r AS ON INSERT TO release_runner.history DO INSTEAD NOTHING",
    "CREATE TRIGGER t BEFORE INSERT ON release_runner.history FOR EACH ROW EXECUTE FUNCTION f()",
    "ALTER TABLE release_runner.history ADD COLUMN x int",
    "DROP TABLE release_runner.deferred",
    "DROP SCHEMA a, release_runner CASCADE",
    "ALTER SCHEMA release_runner RENAME TO x",
    "ALTER SCHEMA release_runner OWNER TO bob",
    "DELETE FROM release_runner.history WHERE version = '1'",
    "UPDATE release_runner.history SET status = 'applied'",
    "INSERT INTO release_runner.history (version) VALUES ('1')",
    "TRUNCATE release_runner.history",
    "CREATE SCHEMA release_runner",
    "CREATE POLICY p ON release_runner.history USING (false)",
    "REVOKE INSERT ON release_runner.history FROM PUBLIC",
    "LOCK TABLE release_runner.history",
]
READS_OR_ELSEWHERE = [
    "SELECT * FROM release_runner.history",
    "CREATE VIEW v AS SELECT version FROM release_runner.history",
    "INSERT INTO t SELECT version FROM release_runner.history",
    "CREATE TABLE release_runner_x (id int)",
    "CREATE TABLE public.history (id int)",
    "ALTER TABLE history ADD COLUMN x int",
    "CREATE TABLE s.t (release_runner int)",
    "DROP TABLE release_runner",
    "DROP SCHEMA other",
]


@pytest.mark.parametrize("text", RELEASES_LOCK + KEEPS_LOCK)
def test_what_releases_the_runner_lock(text: str) -> None:
    assert releases_runner_lock(migration_value("1", text + ";").statements[0]) == (text in RELEASES_LOCK)


@pytest.mark.parametrize("text", CHANGES_SCHEMA + READS_OR_ELSEWHERE)
def test_what_changes_the_runner_schema(text: str) -> None:
    statement = migration_value("1", text + ";").statements[0]
    assert changes_runner_schema(statement, "release_runner") == (text in CHANGES_SCHEMA)


def test_preflight_refuses_both_and_names_the_schema_it_was_given() -> None:
    """Errors, so the batch is refused before anything runs; the schema is the run's
    --history-schema, not a fixed name."""
    (item,) = prepare_all(
        [
            migration_value(
                "1",
                "SELECT pg_advisory_unlock_all();\nCREATE RULE r AS ON INSERT TO ops.history DO INSTEAD NOTHING;",
            )
        ],
        runner_schema="ops",
    )
    assert [(f.rule, f.line) for f in item.errors] == [("releases-runner-lock", 1), ("runner-schema", 2)]
