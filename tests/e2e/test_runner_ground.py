"""A migration cannot take the runner's ground away: what releases the runner lock or changes
the runner's history schema is refused before anything runs (exit 5), and what the text cannot
show (a function that does it, a rule added by hand) is caught after the migration, in its own
message, before it commits (exit 1, nothing of it applied, the run stops)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import history, run_cli, table_exists, write

UNLOCK = "CREATE FUNCTION unlock_all() RETURNS void LANGUAGE sql AS 'SELECT pg_advisory_unlock_all()'"


def _migrate(directory: Path, url: str) -> Any:
    return run_cli("migrate", "--no-verify", "--migrations", str(directory), url=url)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("SELECT pg_advisory_unlock_all();", "releases-runner-lock"),
        ("-- release-runner: no-transaction\nDISCARD ALL;", "releases-runner-lock"),
        ("CREATE RULE swallow AS ON INSERT TO release_runner.history DO INSTEAD NOTHING;", "runner-schema"),
        ("DELETE FROM release_runner.history;", "runner-schema"),
    ],
)
def test_what_the_text_shows_is_refused_before_anything_runs(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any], text: str, rule: str
) -> None:
    directory = write(tmp_path, {"0001_a.sql": "CREATE TABLE a (id int);\n", "0002_b.sql": text + "\n"})
    result = _migrate(directory, url)
    assert result.code == 5, result.stdout[-2000:]
    assert [e["rule"] for e in result.named("preflight.error")] == [rule]
    assert not table_exists(admin, "a")


def test_a_function_that_releases_the_lock_rolls_its_migration_back_and_stops(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """Transactional: the guard finds the lock gone before COMMIT; the migration is rolled back
    (its table absent, no history row), the next one never runs, exit 1 with words that say why."""
    admin.execute(UNLOCK)
    directory = write(
        tmp_path,
        {
            "0001_a.sql": "CREATE TABLE a (id int);\n",
            "0002_b.sql": "CREATE TABLE b (id int);\nSELECT unlock_all();\n",
            "0003_c.sql": "CREATE TABLE c (id int);\n",
        },
    )
    result = _migrate(directory, url)
    assert result.code == 1, result.stdout[-2000:]
    assert "runner lock was released" in result.named("migration.failed")[0]["error"]
    assert (result.finished["applied"], result.finished["pending"]) == (1, 2)
    assert [row[0] for row in history(admin)] == ["0001"]
    assert table_exists(admin, "a") and not table_exists(admin, "b") and not table_exists(admin, "c")


def test_a_no_transaction_statement_that_releases_the_lock_is_recorded_and_stops_the_run(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """No-transaction: the statement ran and its row says so; the run stops there (exit 1)."""
    admin.execute(UNLOCK)
    directory = write(
        tmp_path,
        {
            "0001_unlock.sql": "-- release-runner: no-transaction\nSELECT unlock_all();\n",
            "0002_c.sql": "CREATE TABLE c (id int);\n",
        },
    )
    result = _migrate(directory, url)
    assert result.code == 1, result.stdout[-2000:]
    assert [e["version"] for e in result.named("migration.applied")] == ["0001"]
    assert "runner lock was released" in result.finished["error"]
    assert history(admin) == [("0001", "applied", "no-transaction")]
    assert not table_exists(admin, "c")


@pytest.mark.parametrize(
    "keeps_rows_out",
    [
        "CREATE RULE swallow AS ON INSERT TO release_runner.history DO INSTEAD NOTHING",
        "CREATE FUNCTION drop_row() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';"
        " CREATE TRIGGER drop_row BEFORE INSERT ON release_runner.history"
        " FOR EACH ROW EXECUTE FUNCTION drop_row()",
    ],
)
def test_a_history_row_kept_out_rolls_the_migration_back(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any], keeps_rows_out: str
) -> None:
    """A rule or trigger on the history table (added by hand) keeps the row out: the migration
    is rolled back and reported failed, never `applied` with no row to show for it."""
    directory = write(tmp_path, {"0001_a.sql": "CREATE TABLE a (id int);\n"})
    assert _migrate(directory, url).code == 0
    admin.execute(keeps_rows_out)
    write(directory, {"0002_b.sql": "CREATE TABLE b (id int);\n"})
    result = _migrate(directory, url)
    assert result.code == 1, result.stdout[-2000:]
    assert "history row was not written" in result.named("migration.failed")[0]["error"]
    assert not result.named("migration.applied") and not table_exists(admin, "b")
