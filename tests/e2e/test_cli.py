"""The command line's edges: usage errors, URLs and their secrets, unreachable or refusing
servers, help and version, and `new`."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from release_runner.core.migrations import read_directory
from tests.conftest import (
    PASSWORD,
    Server,
    cli_env,
    run_cli,
    write,
)


def test_usage_errors_exit_2(tmp_path: Path, url: str) -> None:
    """Misnamed file, duplicate version, empty or missing directory, no URL: exit 2, named."""
    cases = {
        "misnamed": ({"1-foo.sql": "SELECT 1;"}, "1-foo.sql"),
        "upper-case extension": ({"0001_x.SQL": "SELECT 1;"}, "0001_x.SQL"),
        "duplicate": ({"0001_a.sql": "SELECT 1;", "1_b.sql": "SELECT 1;"}, "version"),
        "empty": ({}, "no migrations"),
    }
    for label, (files, expected) in cases.items():
        directory = write(tmp_path / label.replace(" ", "-"), files)
        result = run_cli("migrate", "--migrations", str(directory), url=url)
        assert result.code == 2, label
        assert expected in result.finished["error"], (label, result.finished)
    missing = run_cli("migrate", "--migrations", str(tmp_path / "nope"), url=url)
    assert missing.code == 2 and "does not exist" in missing.finished["error"]
    no_url = run_cli("migrate", env=cli_env(None))
    assert no_url.code == 2 and "no database URL" in no_url.finished["error"]
    bad_option = run_cli("migrate", "--lock-timeout", "soon", url=url)
    assert bad_option.code == 2 and bad_option.finished["event"] == "release.finished"


def test_url_fallbacks_are_named_never_printed(tmp_path: Path, url: str) -> None:
    """DIRECT_DATABASE_URL wins over DATABASE_URL; the log names the variable, not the value."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a ();\n"})
    env = cli_env(None, DIRECT_DATABASE_URL=url, DATABASE_URL="postgresql://wrong@127.0.0.1:1/x")
    result = run_cli("migrate", "--migrations", str(tmp_path), env=env)
    assert result.code == 0
    assert result.named("db.connected")[0]["source"] == "DIRECT_DATABASE_URL"
    assert url not in result.stdout


def test_wrong_password_is_not_retried_and_never_printed(
    tmp_path: Path, server: Server, database: str
) -> None:
    """Authentication failures exit 2 at once; no output contains the password."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a ();\n"})
    bad = server.url(database).replace(PASSWORD.replace("-", "-"), PASSWORD + "x")
    result = run_cli("migrate", "--migrations", str(tmp_path), url=bad)
    assert result.code == 2
    assert not result.named("db.connect_retry")
    assert PASSWORD not in result.stdout + result.stderr
    assert "password authentication failed" in result.finished["error"]


def test_unreachable_database_retries_then_exits_4(tmp_path: Path, server: Server, database: str) -> None:
    """Connection refused is retried with backoff within --connect-timeout, then exit 4."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a ();\n"})
    dead = server.url(database, port=1)
    result = run_cli("migrate", "--migrations", str(tmp_path), "--connect-timeout", "2s", url=dead)
    assert result.code == 4
    assert result.finished["status"] == "unreachable"
    retries = result.named("db.connect_retry")
    assert len(retries) >= 2 and all("delay_ms" in r for r in retries)
    assert PASSWORD not in result.stdout + result.stderr


def test_secrets_never_reach_output_even_on_failure(tmp_path: Path, url: str) -> None:
    """A failing migration whose SQL and error mention the URL and password print neither."""
    write(tmp_path, {"0001_a.sql": f"SELECT 'password={PASSWORD}'::int;\n"})
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 1
    assert PASSWORD not in result.stdout + result.stderr
    status = run_cli("status", "--format", "json", "--migrations", str(tmp_path), url=url)
    assert PASSWORD not in status.stdout + status.stderr


def test_help_and_version() -> None:
    """--version and --help on every command; every option reads an environment variable and
    --help shows it."""
    import click

    from release_runner.cli.main import cli

    assert "release-runner, version" in run_cli("--version").stdout
    listing = run_cli("--help").stdout.split("Commands:")[1]
    assert "..." not in listing and len(listing.strip().splitlines()) == len(cli.commands)  # none cut short
    for name, command in cli.commands.items():
        if name == "help":
            continue  # `help COMMAND` shows the others' help: test_help_command
        result = run_cli(name, "--help")
        assert result.code == 0 and "RELEASE_RUNNER_MIGRATIONS" in result.stdout
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert param.envvar and param.show_envvar, (name, param.name)
                names = [param.envvar] if isinstance(param.envvar, str) else param.envvar
                shown = " ".join(result.stdout.split())
                assert all(env in shown for env in names), (name, param.envvar)


def test_help_command_and_usage_errors_in_words() -> None:
    """`help COMMAND` shows that command's help; a usage error with --log-format console ends
    in words, not a JSON line; an unknown command for help is a usage error (exit 2)."""
    shown = run_cli("help", "migrate")
    assert shown.code == 0 and "--dry-run" in shown.stdout
    assert run_cli("help", "nope").code == 2
    bogus = run_cli("migrate", "--bogus", "--log-format", "console")
    assert bogus.code == 2 and not bogus.stdout.lstrip().startswith("{")
    assert "refused (exit 2)" in bogus.stdout


@pytest.mark.parametrize(
    "template",
    [
        "postgres//runner:{p}@127.0.0.1:1/x",  # mistyped scheme: libpq echoes it in its error
        "postgresql://runner:{p}@127.0.0.1:1/x?sslmode=bogus",
        "host=127.0.0.1 port=1 user=runner password='{p}' dbname=x",
        "host=127.0.0.1 port=1 user=runner password={p} nonsense",
    ],
)
def test_malformed_urls_never_print_their_password(template: str) -> None:
    """However the URL is written or mistyped, its password never reaches the output."""
    result = run_cli("status", "--connect-timeout", "1", env=cli_env(template.format(p=PASSWORD)))
    assert result.code in (2, 4)
    assert PASSWORD not in result.stdout + result.stderr


def test_read_only_server_is_refused(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any], database: str
) -> None:
    """A replica (here: a database that defaults to read-only) gets a clear exit 2."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a ();\n"})
    admin.execute(f"ALTER DATABASE {database} SET default_transaction_read_only = on")
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 2
    assert "read-only server" in result.finished["error"]


def test_missing_privileges_exit_2_with_advice(
    tmp_path: Path, server: Server, database: str, admin: psycopg.Connection[Any]
) -> None:
    """A role that may not create the history schema: exit 2 naming the privilege, not a crash."""
    import secrets

    role = f"weak_{secrets.token_hex(3)}"
    admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'weak-pass'")
    admin.execute(f"REVOKE CREATE ON DATABASE {database} FROM PUBLIC")
    try:
        write(tmp_path, {"0001_a.sql": "CREATE TABLE a ();\n"})
        weak = f"postgresql://{role}:weak-pass@{server.host}:{server.port}/{database}"
        result = run_cli("migrate", "--migrations", str(tmp_path), url=weak)
        assert result.code == 2, result.stdout
        assert "42501" in result.finished["error"] and "privileges" in result.finished["error"]
        assert not result.named("release.crashed")
    finally:
        admin.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")


def test_non_utf8_database_gets_text_in_its_encoding(tmp_path: Path, server: Server) -> None:
    """A LATIN1 database: the migration's non-ASCII text arrives intact."""
    import secrets

    from release_runner.db import connection

    name = f"latin_{secrets.token_hex(4)}"
    with psycopg.connect(server.admin, autocommit=True) as conn:
        conn.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    try:
        write(tmp_path, {"0001_a.sql": "CREATE TABLE t (note text);\nINSERT INTO t VALUES ('café');\n"})
        result = run_cli("migrate", "--migrations", str(tmp_path), url=server.url(name))
        assert result.code == 0, result.stdout
        with psycopg.connect(connection.with_dbname(server.admin, name)) as conn:
            assert conn.execute("SELECT note, octet_length(note) FROM t").fetchone() == ("café", 4)
    finally:
        connection.drop_database(server.admin, name)


def test_applied_by_for_a_uid_without_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A container run as a bare uid (docker run --user 12345) has no user name to record."""
    import getpass

    from release_runner.db.history import HistoryStore, RunContext

    def nameless() -> str:
        raise KeyError("getpwuid(): uid not found: 12345")

    monkeypatch.setattr(getpass, "getuser", nameless)
    assert RunContext(HistoryStore("release_runner"), "r", {}).applied_by.startswith(f"uid {os.getuid()}@")


def test_the_connect_timeout_holds_against_a_server_that_never_answers(tmp_path: Path) -> None:
    """A port that accepts TCP but never speaks: --connect-timeout 5 ends within about a
    second of it (the last attempt used to be scheduled past the deadline: 9.3 s)."""
    write(tmp_path, {"0001_a.sql": "SELECT 1;\n"})
    with socket.create_server(("127.0.0.1", 0), backlog=64) as silent:
        port = silent.getsockname()[1]
        started = time.monotonic()
        result = run_cli(
            "migrate",
            "--migrations",
            str(tmp_path),
            "--connect-timeout",
            "5",
            "--database-url",
            f"postgresql://x:y@127.0.0.1:{port}/db",
        )
        took = time.monotonic() - started
    assert result.code == 4, result.stdout
    assert took < 5 + 2.5


def test_new_creates_the_next_file_in_the_directory_s_style(tmp_path: Path) -> None:
    """`new`: the next number in the directory's width, a timestamp after timestamps, 0001 in an
    empty directory; drizzle and Prisma folders are pointed at their generators (exit 2)."""
    from tests.conftest import run_cli

    numbered = write(tmp_path / "numbered", {"0001_a.sql": "SELECT 1;", "0002_b.sql": "SELECT 2;"})
    made = run_cli("new", "Add users table!", "--migrations", str(numbered))
    assert made.code == 0, made.stdout
    assert (numbered / "0003_add_users_table.sql").is_file()
    assert made.named("migration.created")[0]["version"] == "0003"
    stamped = write(tmp_path / "stamped", {"20240101000000_a.sql": "SELECT 1;"})
    assert run_cli("new", "b", "--migrations", str(stamped)).code == 0
    (created,) = [p.name for p in stamped.iterdir() if not p.name.startswith("2024")]
    assert re.fullmatch(r"\d{14}_b\.sql", created) and created > "20240101000000"
    assert run_cli("new", "first", "--migrations", str(tmp_path / "empty")).code == 0
    assert (tmp_path / "empty" / "0001_first.sql").is_file()
    assert [m.version for m in read_directory(numbered).migrations] == ["0001", "0002", "0003"]
    drizzle = write(tmp_path / "drizzle", {"meta/_journal.json": '{"entries": []}', "0000_a.sql": ""})
    refused = run_cli("new", "x", "--migrations", str(drizzle))
    assert refused.code == 2 and "drizzle-kit generate" in refused.finished["error"]


def test_the_failing_run_summary_is_an_error() -> None:
    """`release.finished` of a failed run is at level error, so `select(.level != "info")` finds it."""
    result = run_cli("migrate", "--migrations", "/nonexistent")
    assert result.code == 2
    assert result.finished["level"] == "error"
