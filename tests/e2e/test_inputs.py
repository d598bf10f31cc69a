"""Input that must be refused before anything changes (exit 2, file and line named, the database
untouched): NUL bytes, entries named like migrations that are not files, a directory that reads
two ways, a broken journal or URL, a snapshot that cannot be used, text the database's encoding
cannot hold."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from release_runner.db import connection
from release_runner.db.history import HistoryStore
from tests.conftest import ROOT, Server, cli_env, history, run_cli, table_exists, write


def _untouched(admin: psycopg.Connection[Any]) -> bool:
    """Nothing of a run is in the database: no history table, no table of the migrations."""
    return not HistoryStore("release_runner").exists(admin) and not table_exists(admin, "a")


def test_a_nul_byte_is_refused_with_its_line(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A NUL byte would cut the file short at the server: refused, exit 2, file:line:column."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a (id int);\n"})
    (tmp_path / "0002_b.sql").write_bytes(b"-- b\nCREATE TABLE b (id int)\x00 x\n")
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 2, result.stdout
    assert "0002_b.sql:2:24: contains a NUL byte" in result.finished["error"]
    assert _untouched(admin)


@pytest.mark.parametrize("kind", ["directory", "dangling symlink", "fifo"])
def test_an_entry_named_like_a_migration_that_is_not_a_file_is_an_error(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any], kind: str
) -> None:
    """A directory, a dangling symlink or a FIFO named 0002_b.sql is an error, not a skip."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a (id int);\n"})
    entry = tmp_path / "0002_b.sql"
    if kind == "directory":
        entry.mkdir()
    elif kind == "dangling symlink":
        entry.symlink_to(tmp_path / "nowhere.sql")
    else:
        os.mkfifo(entry)
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url, timeout=30)
    assert result.code == 2, result.stdout
    assert "0002_b.sql: named like a migration but not a regular file" in result.finished["error"]
    assert _untouched(admin)


def test_a_directory_that_reads_two_ways_is_refused_naming_both(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A native sql/ with archive/migration.sql inside reads as native and as Prisma: refused,
    naming both and the option that chooses; the option then reads it as asked."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a (id int);\n", "archive/migration.sql": "DROP TABLE a;\n"})
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 2
    assert "both prisma and native" in result.finished["error"]
    assert "--migrations-format" in result.finished["error"]
    assert _untouched(admin)
    chosen = run_cli("migrate", "--migrations", str(tmp_path), "--migrations-format", "native", url=url)
    assert chosen.code == 0, chosen.stdout
    assert history(admin) == [("0001", "applied", "transaction")]


def test_a_journal_entry_without_tag_is_a_usage_error(tmp_path: Path, url: str) -> None:
    """A malformed drizzle journal says what to fix, with the summary line, not a KeyError."""
    write(tmp_path, {"0000_a.sql": "SELECT 1;\n"})
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "_journal.json").write_text(json.dumps({"entries": [{"idx": 0, "when": 1}]}))
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 2
    assert 'entry 0 has no "tag"' in result.finished["error"]
    assert "Traceback" not in result.stdout + result.stderr


def test_an_unreadable_url_is_a_usage_error_without_traceback(tmp_path: Path) -> None:
    """`postgresql://u:p@[::1/db?x` is a usage error naming what to check; no traceback, no password."""
    write(tmp_path, {"0001_a.sql": "SELECT 1;\n"})
    result = run_cli(
        "migrate", "--migrations", str(tmp_path), "--database-url", "postgresql://u:s3cretpw@[::1/db?x"
    )
    assert result.code == 2
    assert result.finished["command"] == "migrate"
    assert "cannot be read" in result.finished["error"]
    assert "Traceback" not in result.stdout + result.stderr
    assert "s3cretpw" not in result.stdout + result.stderr


@pytest.mark.parametrize("snapshot", [None, '{"format": "release-runner/schema-snap', "\x00\x01"])
def test_an_unusable_snapshot_refuses_before_applying(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any], snapshot: str | None
) -> None:
    """--require-snapshot without the file, or a truncated or unreadable one: exit 2 and
    nothing applied (exit 2 means untouched)."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a (id int);\n"})
    if snapshot is not None:
        (tmp_path / "schema.snapshot.json").write_text(snapshot)
    result = run_cli("migrate", "--require-snapshot", "--migrations", str(tmp_path), url=url)
    assert result.code == 2, result.stdout
    assert "schema.snapshot.json" in result.finished["error"]
    assert result.finished["applied"] == 0
    assert _untouched(admin)


@pytest.fixture
def latin1(server: Server) -> Iterator[str]:
    name = f"latin_{secrets.token_hex(4)}"
    with psycopg.connect(server.admin, autocommit=True) as conn:
        conn.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    yield name
    connection.drop_database(server.admin, name)


def test_text_the_database_encoding_cannot_hold_is_refused_up_front(
    tmp_path: Path, server: Server, latin1: str
) -> None:
    """In a LATIN1 database, a character LATIN1 lacks (in the second file) refuses the run
    before the first file is applied: exit 2, file:line:column."""
    write(
        tmp_path,
        {"0001_a.sql": "CREATE TABLE a (note text);\n", "0002_b.sql": "INSERT INTO a\nVALUES ('ok €');\n"},
    )
    result = run_cli("migrate", "--migrations", str(tmp_path), url=server.url(latin1))
    assert result.code == 2, result.stdout
    assert "0002_b.sql:2:13: the character '€' cannot be stored" in result.finished["error"]
    assert "Traceback" not in result.stdout
    with psycopg.connect(connection.with_dbname(server.admin, latin1), autocommit=True) as conn:
        assert not table_exists(conn, "a")


def test_a_large_data_migration_stays_within_a_few_times_its_size(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A 12 MB INSERT of 200,000 rows applies with a peak RSS within a few times the file, plus
    the interpreter (the parse tree of such a file used to take over twenty times its size)."""
    rows = ",\n".join(f"({i}, 'row {i} {'x' * 40}')" for i in range(200_000))
    write(tmp_path, {"0001_a.sql": f"CREATE TABLE a (id int, note text);\nINSERT INTO a VALUES\n{rows};\n"})
    size_mb = (tmp_path / "0001_a.sql").stat().st_size / 2**20
    measure = (
        "import resource, subprocess, sys;"
        f"code = subprocess.run([sys.executable, '-m', 'release_runner', 'migrate', '--no-verify',"
        f" '--migrations', {str(tmp_path)!r}], stdout=subprocess.DEVNULL).returncode;"
        "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    result = subprocess.run(
        [sys.executable, "-c", measure], capture_output=True, text=True, env=cli_env(url), cwd=ROOT
    )
    code, peak_mb = result.stdout.split()
    assert code == "0", result.stderr
    assert float(peak_mb) < 60 + 7 * size_mb, (peak_mb, size_mb)
    assert admin.execute("SELECT count(*) FROM a").fetchone() == (200_000,)


def test_a_host_name_that_does_not_resolve_is_said_in_words(tmp_path: Path) -> None:
    """Not the resolver's `[Errno -2]`: the host named, and that it does not resolve (exit 4,
    since a name that appears later, a new Machine's `.internal`, is retried until the budget)."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a (id int);\n"})
    url = "postgresql://runner:pw@no-such-host.invalid/app"
    result = run_cli("migrate", "--migrations", str(tmp_path), "--connect-timeout", "2", env=cli_env(url))
    assert result.code == 4, result.stdout
    assert "the host name 'no-such-host.invalid' does not resolve" in result.finished["error"]
    assert "Errno" not in result.stdout
