"""Data preflight on a real server: a pending statement the live rows would refuse is refused
before anything is applied (exit 5, no history row, no value in any output); the same statement
over clean rows applies; a backfill earlier in the file or in an earlier file is never refused;
a probe that cannot finish in time is a warning and the run goes on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import run_cli, start_cli, write

SECRET = "sk_live_4f9a"
PASSWORD_IN_URL = "hunter2-data"
# rule, the table as the app left it (a violating row, then the fix that cleans it), statement
CASES = [
    (
        "not-null",
        f"CREATE TABLE t (id int, a text); INSERT INTO t VALUES (1, NULL), (2, '{SECRET}');",
        "UPDATE t SET a = 'x' WHERE a IS NULL;",
        "ALTER TABLE t ALTER COLUMN a SET NOT NULL;",
    ),
    (
        "not-null",
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1);",
        "DELETE FROM t;",
        "ALTER TABLE t ADD COLUMN b int NOT NULL;",
    ),
    (
        "unique",
        f"CREATE TABLE t (id int, a text); INSERT INTO t VALUES (1, '{SECRET}'), (2, '{SECRET}');",
        "DELETE FROM t WHERE id = 2;",
        "CREATE UNIQUE INDEX t_a ON t (lower(a)) WHERE id > 0;",
    ),
    (
        "unique",
        f"CREATE TABLE t (id int, a text); INSERT INTO t VALUES (1, '{SECRET}'), (2, '{SECRET}');",
        "DELETE FROM t WHERE id = 2;",
        "ALTER TABLE t ADD CONSTRAINT t_a UNIQUE (a);",
    ),
    (
        "check",
        "CREATE TABLE t (id int, a int); INSERT INTO t VALUES (1, -5);",
        "UPDATE t SET a = 1;",
        "ALTER TABLE t ADD CONSTRAINT positive CHECK (a > 0);",
    ),
    (
        "foreign-key",
        "CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE t (id int, p int); INSERT INTO t VALUES (1, 7);",
        "DELETE FROM t;",
        "ALTER TABLE t ADD CONSTRAINT t_p FOREIGN KEY (p) REFERENCES p (id);",
    ),
    (
        "foreign-key",  # REFERENCES without columns: the referenced table's primary key
        "CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE t (id int, p int); INSERT INTO t VALUES (1, 7);",
        "INSERT INTO p VALUES (7);",
        "ALTER TABLE t ADD FOREIGN KEY (p) REFERENCES p;",
    ),
    (
        "check",  # a constraint an earlier release added NOT VALID: the catalog has its expression
        "CREATE TABLE t (id int, a int); INSERT INTO t VALUES (1, -5);"
        " ALTER TABLE t ADD CONSTRAINT positive CHECK (a > 0) NOT VALID;",
        "UPDATE t SET a = 1;",
        "ALTER TABLE t VALIDATE CONSTRAINT positive;",
    ),
    (
        "foreign-key",
        "CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE t (id int, p int); INSERT INTO t VALUES (1, 7);"
        " ALTER TABLE t ADD CONSTRAINT t_p FOREIGN KEY (p) REFERENCES p NOT VALID;",
        "DELETE FROM t;",
        "ALTER TABLE t VALIDATE CONSTRAINT t_p;",
    ),
    (
        "cast",
        f"CREATE TABLE t (id int, a text); INSERT INTO t VALUES (1, '{SECRET}');",
        "UPDATE t SET a = '12';",
        "ALTER TABLE t ALTER COLUMN a TYPE int USING a::int;",
    ),
]


def _migrate(directory: Path, url: str, *extra: str) -> Any:
    # The post-deploy phase: the release-phase rules (which refuse some of these statements on
    # their own) are off, so what is tested here is the data.
    return run_cli("migrate", "--post-deploy", "--no-verify", "--migrations", str(directory), *extra, url=url)


@pytest.mark.parametrize(("rule", "table", "fix", "statement"), CASES)
def test_rows_that_would_refuse_a_statement_refuse_the_run(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any], rule: str, table: str, fix: str, statement: str
) -> None:
    """Violating rows: exit 5, one preflight.data naming the rule, table and rows, nothing
    applied, no value printed. Clean rows: it applies."""
    admin.execute(table)
    directory = write(
        tmp_path, {"0001_first.sql": "CREATE TABLE other (id int);\n", "0002_step.sql": statement + "\n"}
    )
    refused = _migrate(directory, url)
    assert refused.code == 5, refused.stdout[-2000:]
    (finding,) = refused.named("preflight.data")
    assert (finding["rule"], finding["table"], finding["line"]) == (rule, "t", 1)
    assert finding["rows"] in ("1", "2") and finding["fix"]
    assert SECRET not in refused.stdout + refused.stderr
    assert admin.execute("SELECT to_regclass('other')").fetchone() == (None,)
    admin.execute(fix)
    applied = _migrate(directory, url)
    assert applied.code == 0, applied.stdout[-2000:]
    assert applied.finished["applied"] == 2


@pytest.mark.parametrize(("rule", "table", "fix", "statement"), CASES)
def test_a_backfill_before_it_is_never_refused(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any], rule: str, table: str, fix: str, statement: str
) -> None:
    """The statement that cleans the rows is pending too (earlier in the same file, or in an
    earlier file): the check is left to the migration, which applies."""
    admin.execute(table)
    same_file = write(tmp_path / "same", {"0001_fix_and_step.sql": f"{fix}\n{statement}\n"})
    result = _migrate(same_file, url)
    assert result.code == 0, result.stdout[-2000:]
    assert result.named("preflight.data_unknown") and not result.named("preflight.data")


def test_warn_reports_and_off_does_not_probe(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """--data-preflight warn reports the finding and lets the migration fail on its own;
    plan shows the finding and says migrate would refuse."""
    admin.execute(CASES[0][1])
    directory = write(tmp_path, {"0001_step.sql": CASES[0][3] + "\n"})
    planned = run_cli("plan", "--post-deploy", "--migrations", str(directory), "--format", "json", url=url)
    assert planned.code == 5 and '"rule": "not-null"' in planned.stdout
    warned = _migrate(directory, url, "--data-preflight", "warn")
    assert warned.code == 1 and warned.named("preflight.data")[0]["level"] == "warning"
    off = _migrate(directory, url, "--data-preflight", "off")
    assert off.code == 1 and not off.named("preflight.data")


def test_a_slow_probe_is_unknown_and_a_busy_table_does_not_block_it(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any], server: Any, database: str
) -> None:
    """A probe over two million rows with --data-timeout 50ms ends as data_unknown within it
    and the run goes on; another session holding ROW EXCLUSIVE on the table does not block the
    probes."""
    admin.execute(
        "CREATE TABLE t (id int, a int); INSERT INTO t SELECT g, g FROM generate_series(1, 2000000) g"
    )
    directory = write(tmp_path, {"0001_step.sql": "CREATE UNIQUE INDEX t_a ON t (a, md5(a::text));\n"})
    slow = _migrate(directory, url, "--data-timeout", "50ms")
    assert slow.code == 0, slow.stdout[-2000:]
    (unknown,) = slow.named("preflight.data_unknown")
    assert "did not finish within 0.05s" in unknown["reason"]
    admin.execute("DROP INDEX t_a; INSERT INTO t VALUES (1, 1)")
    write(directory, {"0002_again.sql": "CREATE UNIQUE INDEX t_a_again ON t (a) WHERE a < 2;\n"})
    with psycopg.connect(server.url(database)) as holder:
        holder.execute("LOCK TABLE t IN ROW EXCLUSIVE MODE")
        started = time.monotonic()
        blocked = _migrate(directory, url, "--data-timeout", "10s", "--lock-timeout", "1s", "--retries", "1")
        took = time.monotonic() - started
        holder.rollback()
    assert blocked.code == 5 and blocked.named("preflight.data")[0]["rows"] == "1"
    assert took < 10, took  # the probe's ACCESS SHARE never waits behind ROW EXCLUSIVE


def _writes(admin: psycopg.Connection[Any]) -> tuple[int, ...]:
    """Rows inserted, updated and deleted in this database's tables, as the statistics say:
    every backend that ended has flushed its counts, and this one flushes its own first. (The
    user tables' counts, pg_stat_database's less the catalogs: autovacuum may ANALYZE the new
    table at any moment, and the catalog rows that writes would count as the probes'.)"""
    admin.execute("SELECT pg_stat_force_next_flush()")
    admin.execute("SELECT pg_stat_clear_snapshot()")
    row = admin.execute(
        "SELECT coalesce(sum(n_tup_ins), 0), coalesce(sum(n_tup_upd), 0), coalesce(sum(n_tup_del), 0)"
        " FROM pg_stat_user_tables"
    ).fetchone()
    assert row is not None
    return tuple(int(value) for value in row)


def test_probes_write_nothing_and_take_only_access_share(
    tmp_path: Path, admin: psycopg.Connection[Any], url: str
) -> None:
    """While `plan` probes (a CHECK that takes its time on every row), pg_locks shows nothing
    of the runner's stronger than ACCESS SHARE; afterwards the statistics show no row
    written."""
    admin.execute("CREATE TABLE t (id int, a int); INSERT INTO t SELECT g, g FROM generate_series(1, 300) g")
    statement = "ALTER TABLE t ADD CONSTRAINT slow CHECK (a > 0 AND pg_sleep(0.01) IS NOT NULL);"
    directory = write(tmp_path, {"0001_slow_check.sql": statement + "\n"})
    before = _writes(admin)
    process = start_cli("plan", "--post-deploy", "--migrations", str(directory), "--format", "json", url=url)
    modes: set[str] = set()
    while process.poll() is None:
        rows = admin.execute(
            "SELECT l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE a.application_name = 'release-runner' AND l.locktype = 'relation'"
        ).fetchall()
        modes.update(row[0] for row in rows)
        time.sleep(0.05)
    assert process.returncode == 0, process.communicate()
    assert modes == {"AccessShareLock"}  # seen while the probe ran (it takes about 3 s)
    assert _writes(admin) == before


def test_validate_of_a_constraint_added_not_valid_earlier_in_the_release(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """NOT VALID in one pending file, VALIDATE in the next: the probe uses the definition the
    release itself gives (a NOT VALID constraint changes no row, so it is probed ahead)."""
    admin.execute("CREATE TABLE t (id int, a int); INSERT INTO t VALUES (1, -5)")
    directory = write(
        tmp_path,
        {
            "0001_add.sql": "ALTER TABLE t ADD CONSTRAINT positive CHECK (a > 0) NOT VALID;\n",
            "0002_validate.sql": "SELECT 1;\nALTER TABLE t VALIDATE CONSTRAINT positive;\n",
        },
    )
    refused = _migrate(directory, url)
    assert refused.code == 5, refused.stdout[-2000:]
    (finding,) = refused.named("preflight.data")
    assert (Path(finding["file"]).name, finding["line"], finding["rule"]) == ("0002_validate.sql", 2, "check")
    assert "WHERE NOT (a > " in finding["fix"]
    assert admin.execute("SELECT count(*) FROM pg_constraint WHERE conname = 'positive'").fetchone() == (0,)


def test_probes_run_on_the_data_url(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any], server: Any
) -> None:
    """--data-url: the probes read that database (here a copy whose rows differ, so the test
    can tell which one was read), and a --data-url that cannot be reached leaves every check
    unknown while the run goes on."""
    admin.execute("CREATE TABLE t (id int, a text); INSERT INTO t VALUES (1, 'x')")
    replica = f"t_{int(time.time() * 1000) % 10**9}"
    admin.execute(f"CREATE DATABASE {replica}")
    try:
        with psycopg.connect(server.url(replica), autocommit=True) as conn:
            conn.execute(CASES[0][1])
        directory = write(tmp_path, {"0001_step.sql": CASES[0][3] + "\n"})
        refused = _migrate(directory, url, "--data-url", server.url(replica))
        assert refused.code == 5 and refused.named("preflight.data")[0]["table"] == "t"
        assert PASSWORD_IN_URL not in refused.stdout + refused.stderr
        unreachable = f"postgresql://nobody:{PASSWORD_IN_URL}@127.0.0.1:9/x"
        applied = _migrate(directory, url, "--data-url", unreachable, "--connect-timeout", "2s")
        assert applied.code == 0, applied.stdout[-2000:]
        (unknown,) = applied.named("preflight.data_unknown")
        assert "--data-url database could not be reached" in unknown["reason"]
        assert PASSWORD_IN_URL not in applied.stdout + applied.stderr
    finally:
        admin.execute(f"DROP DATABASE {replica} WITH (FORCE)")
