"""No literal value from a migration, a row or another session's query reaches any output
stream unless --log-sql-values asks for it; what failed (file, line, statement shape, SQLSTATE)
is still there."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import PASSWORD, ROLE, Server, run_cli, wait_for, waiting_on_lock, write

SECRET = "sk_live_9f8e7d6c5b4a"


def _everything(result: Any) -> str:
    return str(result.stdout) + str(result.stderr)


@pytest.mark.parametrize(
    ("files", "sqlstate"),
    [
        # A failing CREATE ROLE with its password (the role exists already).
        ({"0001_role.sql": f"CREATE ROLE {ROLE} LOGIN PASSWORD '{SECRET}';\n"}, "42710"),
        # A value the server echoes in its message.
        ({"0001_cast.sql": f"SELECT '{SECRET}'::int;\n"}, "22P02"),
        # A unique violation: DETAIL holds the key's value.
        (
            {
                "0001_keys.sql": "CREATE TABLE k (token text UNIQUE);\n"
                f"INSERT INTO k VALUES ('{SECRET}');\nINSERT INTO k VALUES ('{SECRET}');\n"
            },
            "23505",
        ),
        # A not-null violation: DETAIL holds the whole row.
        (
            {
                "0001_row.sql": f"CREATE TABLE r (a text, b text NOT NULL);\nINSERT INTO r VALUES ('{SECRET}', NULL);\n"
            },
            "23502",
        ),
    ],
)
def test_failures_name_the_statement_without_its_values(
    tmp_path: Path, url: str, files: dict[str, str], sqlstate: str
) -> None:
    """Each failure keeps file, line, SQLSTATE and the statement's shape, and never the value;
    with --log-sql-values the value is shown (the flag works)."""
    write(tmp_path, files)
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 1, result.stdout
    failed = result.named("migration.failed")[0]
    assert failed["sqlstate"] == sqlstate and failed["line"] is not None and failed["statement"]
    assert SECRET not in _everything(result)
    shown = run_cli("migrate", "--log-sql-values", "--migrations", str(tmp_path), url=url)
    assert SECRET in _everything(shown)


def test_a_syntax_error_on_a_line_with_a_password(tmp_path: Path, url: str) -> None:
    """Preflight's syntax error names file:line:column and the line's shape, not the password."""
    write(tmp_path, {"0001_role.sql": f"CREATE ROLE svc LOGIN PASSWORD '{SECRET}' NOPE;\n"})
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 5
    assert "0001_role.sql:1:" in result.finished["error"]
    assert SECRET not in _everything(result)


def test_a_blocker_s_query_is_shown_without_its_values(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """migration.waiting names the blocking session and the shape of its query, not the token
    in it."""
    admin.execute("CREATE TABLE users (id int, api_token text)")
    write(tmp_path, {"0001_alter.sql": "ALTER TABLE users ADD COLUMN plan text;\n"})
    with psycopg.connect(url) as blocker:
        blocker.execute(f"UPDATE users SET api_token = '{SECRET}' WHERE id = 42")
        result: list[Any] = []
        runner = threading.Thread(
            target=lambda: result.append(
                run_cli(
                    "migrate",
                    "--lock-timeout",
                    "3s",
                    "--retries",
                    "1",
                    "--migrations",
                    str(tmp_path),
                    url=url,
                )
            )
        )
        runner.start()
        wait_for(lambda: waiting_on_lock(admin))
        runner.join(timeout=60)
        blocker.rollback()
    (run,) = result
    waiting = run.named("migration.waiting")
    assert waiting and "UPDATE users SET api_token = $1 WHERE id = $2" in waiting[0]["blockers"][0]["query"]
    assert SECRET not in _everything(run)


def test_a_password_with_an_unencoded_at_sign_never_prints(
    tmp_path: Path, server: Server, database: str
) -> None:
    """`postgresql://user:pa@ssword99@host/db`: libpq reads `ssword99@host` as the host; neither
    the password nor its tail is printed."""
    write(tmp_path, {"0001_a.sql": "SELECT 1;\n"})
    url = f"postgresql://{ROLE}:pa@ssword99@127.0.0.1:{server.port}/{database}"
    result = run_cli(
        "migrate", "--migrations", str(tmp_path), "--connect-timeout", "3s", "--database-url", url
    )
    assert result.code in (2, 4), result.stdout
    assert "ssword99" not in _everything(result)
    assert PASSWORD not in _everything(result)


ROWS = (
    f"CREATE TYPE mood AS ENUM ('ok'); CREATE TABLE t (a text, b int CHECK (b > 0));"
    f" INSERT INTO t VALUES ('{SECRET}', 1), ('x). {SECRET}, (', 2)"
)


@pytest.mark.parametrize(
    ("statement", "sqlstate"),
    [
        ("UPDATE t SET b = a::int;", "22P02"),
        ("ALTER TABLE t ALTER a TYPE uuid USING a::uuid;", "22P02"),
        ("ALTER TABLE t ALTER a TYPE mood USING a::mood;", "22P02"),
        ("ALTER TABLE t ALTER a TYPE jsonb USING a::jsonb;", "22P02"),
        ("UPDATE t SET a = (SELECT a FROM t WHERE b = 1);\nCREATE UNIQUE INDEX t_a ON t (a);", "23505"),
        ("UPDATE t SET b = -b WHERE a LIKE 'x)%';", "23514"),
        (
            "DO $$ DECLARE v text; BEGIN SELECT a INTO v FROM t WHERE b = 1;"
            " RAISE EXCEPTION 'bad token %', v USING DETAIL = 'was ' || v, HINT = 'fix ' || v; END $$;",
            "P0001",
        ),
    ],
)
def test_values_from_rows_in_server_messages_are_masked(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any], statement: str, sqlstate: str
) -> None:
    """Values the server takes from rows, not from the statement (a cast, a duplicate key, a
    failing row whose value holds `).`, a RAISE with DETAIL and HINT) never print; the failure
    still says its file, line and SQLSTATE."""
    admin.execute(ROWS)
    write(tmp_path, {"0001_rows.sql": statement + "\n"})
    args = ("migrate", "--post-deploy", "--data-preflight", "off", "--migrations", str(tmp_path))
    result = run_cli(*args, url=url)
    assert result.code == 1, result.stdout[-2000:]
    failed = result.named("migration.failed")[0]
    assert failed["sqlstate"] == sqlstate and failed["line"], failed
    assert SECRET not in _everything(result), [line for line in result.stdout.splitlines() if SECRET in line]
    assert SECRET in _everything(run_cli(*args, "--log-sql-values", url=url))


@pytest.mark.parametrize(
    "given",
    [
        "postgresql://{role}:hunter2 {secret}@127.0.0.1:{port}/{db}",
        "host=127.0.0.1 port={port} dbname={db} user={role} password=hunter2 {secret}",
    ],
)
def test_a_password_with_a_space_never_prints(
    tmp_path: Path, server: Server, database: str, given: str
) -> None:
    """libpq echoes what it cannot read (`unexpected spaces found in "…"`, `missing "=" after
    "…"`): neither half of the password is printed."""
    write(tmp_path, {"0001_a.sql": "SELECT 1;\n"})
    url = given.format(role=ROLE, secret=SECRET, port=server.port, db=database)
    result = run_cli(
        "migrate", "--migrations", str(tmp_path), "--connect-timeout", "3s", "--database-url", url
    )
    assert result.code in (2, 4), result.stdout
    assert SECRET not in _everything(result) and "hunter2" not in _everything(result)
