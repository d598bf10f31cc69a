"""The summary says what the server did, under faults at the worst moments: a signal as a
migration commits, a reply lost after a concurrent index was built, another runner taking
over during a reconnect, a closed stdout, a hang-up, a signal during start-up."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import (
    CLI,
    ROOT,
    Server,
    cli_env,
    events_of,
    history,
    run_cli,
    running,
    start_cli,
    wait_for,
    write,
)
from tests.proxy import Proxy

# An index build that takes about a second: the expression calls a function that sleeps (it is
# declared IMMUTABLE so that it may index; a trick for tests only).
SLOW_INDEX = {
    "0001_t.sql": (
        "CREATE TABLE t (id int);\nINSERT INTO t SELECT generate_series(1, 100);\n"
        "CREATE FUNCTION slow(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS\n"
        "$$ BEGIN PERFORM pg_sleep(0.01); RETURN $1; END $$;\n"
    ),
    "0002_idx.sql": "CREATE INDEX CONCURRENTLY t_slow ON t (slow(id));\n",
    "0003_after.sql": "CREATE TABLE after_index (id int);\n",
}


def _index(admin: psycopg.Connection[Any]) -> bool | None:
    row = admin.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('t_slow')").fetchone()
    return None if row is None else bool(row[0])


def _applied_by(admin: psycopg.Connection[Any], run_id: str) -> int:
    row = admin.execute(
        "SELECT count(*) FROM release_runner.history WHERE run_id = %s AND status = 'applied'", (run_id,)
    ).fetchone()
    return int(row[0]) if row else 0


def test_a_lost_reply_after_a_concurrent_index_is_settled_from_the_catalog(
    tmp_path: Path, proxy: Proxy, server: Server, database: str, admin: psycopg.Connection[Any]
) -> None:
    """The server finishes CREATE INDEX CONCURRENTLY but its reply is lost and the connection
    dies: the runner reconnects, sees the index valid, records it applied, goes on, exit 0."""
    write(tmp_path, SLOW_INDEX)
    process = start_cli("migrate", "--migrations", str(tmp_path), url=server.url(database, proxy.port))
    wait_for(lambda: running(admin, "CREATE INDEX"))
    proxy.swallowing = True
    wait_for(lambda: _index(admin) is True)
    proxy.cut()
    proxy.swallowing = False
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    (reconciled,) = [e for e in events_of(stdout) if e["event"] == "migration.reconciled"]
    assert (reconciled["version"], reconciled["outcome"]) == ("0002", "applied")
    assert history(admin) == [
        ("0001", "applied", "transaction"),
        ("0002", "applied", "no-transaction"),
        ("0003", "applied", "transaction"),
    ]
    assert events_of(stdout)[-1]["applied"] == 3


def test_a_row_left_started_by_a_vanished_runner_is_settled_on_the_next_deploy(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A runner vanished after its index build finished, leaving the row `started`: the next
    deploy settles it from the catalog instead of refusing until a human runs repair."""
    write(tmp_path, SLOW_INDEX)
    assert run_cli("migrate", "--migrations", str(tmp_path), url=url).code == 0
    admin.execute("UPDATE release_runner.history SET status = 'started' WHERE version = '0002'")
    admin.execute("DELETE FROM release_runner.history WHERE version = '0003'")
    admin.execute("DROP TABLE after_index")
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 0, result.stdout
    assert result.named("migration.reconciled")[0]["outcome"] == "applied"
    assert [row[1] for row in history(admin)] == ["applied"] * 3


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_concurrent_index_is_reported_as_the_catalog_shows(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any], signum: int
) -> None:
    """A signal while CREATE INDEX CONCURRENTLY runs, at a random moment: whatever the build
    had reached (or if it had just finished), the row, the summary and the next deploy agree
    with the catalog."""
    write(tmp_path, {**SLOW_INDEX, "0001_t.sql": SLOW_INDEX["0001_t.sql"].replace("1, 100", "1, 300")})
    process = start_cli("migrate", "--migrations", str(tmp_path), url=url)
    wait_for(lambda: running(admin, "CREATE INDEX"))
    time.sleep(random.uniform(0.0, 1.5))  # the build takes about 3 s
    process.send_signal(signum)
    stdout, _ = process.communicate(timeout=30)
    assert process.returncode in (0, 128 + signum)
    summary = events_of(stdout)[-1]
    state = _index(admin)
    rows = dict((version, status) for version, status, _ in history(admin))
    assert summary["applied"] == _applied_by(admin, summary["run_id"])
    if process.returncode == 0:
        assert state is True and rows == {"0001": "applied", "0002": "applied", "0003": "applied"}
        return
    if state is True:
        assert rows.get("0002") == "applied" and "recorded applied" in summary["error"]
    elif state is False:
        assert rows.get("0002") == "failed" and "DROP INDEX CONCURRENTLY IF EXISTS t_slow" in summary["error"]
    else:
        assert "0002" not in rows
    rerun = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert rerun.code == (5 if state is False else 0), rerun.stdout


def test_signals_as_a_migration_commits_are_reported_as_committed(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """SIGTERM at random moments around the end of a 250 ms migration: the summary's `applied`
    always equals the rows this run committed (it used to call one in three rolled back)."""
    files = {f"{n:04d}_m.sql": f"CREATE TABLE m{n} (id int);\nSELECT pg_sleep(0.25);\n" for n in range(1, 4)}
    write(tmp_path, files)
    for trial in range(6):
        process = start_cli("migrate", "--migrations", str(tmp_path), url=url)
        wait_for(lambda: running(admin, "pg_sleep"))
        time.sleep(0.2 + 0.02 * trial)
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=30)
        summary = events_of(stdout)[-1]
        assert summary["event"] == "release.finished"
        if process.returncode == 143:
            assert summary["applied"] == _applied_by(admin, summary["run_id"]), summary
        else:
            assert process.returncode == 0
        admin.execute("DROP SCHEMA release_runner CASCADE")
        for n in range(1, 4):
            admin.execute(f"DROP TABLE IF EXISTS m{n}")


def test_another_runner_taking_over_during_a_reconnect(
    tmp_path: Path, proxy: Proxy, server: Server, database: str, admin: psycopg.Connection[Any]
) -> None:
    """Runner A loses its connection mid-migration and cannot reconnect for a while; runner B
    takes the lock and applies everything; A then reconnects, reads the history again and
    finishes with exit 0 without applying anything twice."""
    files = {
        "0001_slow.sql": "CREATE TABLE a (id int);\nSELECT pg_sleep(1);\n",
        "0002_b.sql": "CREATE TABLE b (id int);\n",
        "0003_c.sql": "CREATE TABLE c (id int);\n",
    }
    write(tmp_path, files)
    first = start_cli("migrate", "--migrations", str(tmp_path), url=server.url(database, proxy.port))
    wait_for(lambda: running(admin, "pg_sleep"))
    proxy.refusing = True
    proxy.cut()
    second = run_cli("migrate", "--migrations", str(tmp_path), url=server.url(database))
    assert second.code == 0 and second.finished["applied"] == 3, second.stdout
    proxy.refusing = False
    stdout, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stdout + stderr
    skipped = [e for e in events_of(stdout) if e["event"] == "migration.already_applied"]
    assert [e["version"] for e in skipped] == ["0001", "0002", "0003"]
    assert not any(e["ours"] for e in skipped)
    assert events_of(stdout)[-1]["applied"] == 0
    assert len(history(admin)) == 3


def test_a_closed_stdout_still_ends_with_a_summary(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """`migrate | head -c 1200`: the run goes on, exits with its real code, and the summary
    reaches stderr."""
    write(tmp_path, {f"{n:04d}_m.sql": f"CREATE TABLE m{n} (id int);\n" for n in range(1, 31)})
    result = subprocess.run(
        [
            "bash",
            "-c",
            f"{' '.join(CLI)} migrate --migrations {tmp_path} | head -c 1200 >/dev/null; echo ${{PIPESTATUS[0]}}",
        ],
        capture_output=True,
        text=True,
        env=cli_env(url),
        cwd=ROOT,
        timeout=60,
    )
    assert result.stdout.strip() == "0", result.stderr
    assert '"event": "release.finished"' in result.stderr
    assert "Traceback" not in result.stderr
    assert len(history(admin)) == 30


def test_sighup_ends_with_a_summary(tmp_path: Path, url: str, admin: psycopg.Connection[Any]) -> None:
    """SIGHUP (a closed terminal) is an interruption like the others: exit 129 and a summary."""
    write(tmp_path, {"0001_slow.sql": "CREATE TABLE a ();\nSELECT pg_sleep(3);\n"})
    process = start_cli("migrate", "--migrations", str(tmp_path), url=url)
    wait_for(lambda: running(admin, "pg_sleep"))
    process.send_signal(signal.SIGHUP)
    stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 129
    assert events_of(stdout)[-1]["status"] == "interrupted"
    assert history(admin) == []


def test_a_signal_during_start_up_ends_with_a_summary_not_a_traceback(tmp_path: Path, url: str) -> None:
    """SIGINT or SIGTERM while the runner starts (imports, options, logging): one summary line
    and no traceback, at whatever moment it arrives. A signal that lands before the interpreter
    has run any of the runner's code (the first few milliseconds; more on a loaded machine)
    ends the process as the signal does, with no output at all; most trials land later."""
    write(tmp_path, {"0001_a.sql": "SELECT 1;\n"})
    summaries = 0
    # Moments spread over start-up, and shifted at random from run to run: a signal that cut the
    # import of asyncio (under structlog) halfway broke the summary's own import, and only a
    # randomized run found that moment (seed 3392069838 of the random-fault test).
    seed = random.randrange(2**32)
    moments = random.Random(seed)
    for trial in range(16):
        signum = signal.SIGINT if trial % 2 else signal.SIGTERM
        process = start_cli("migrate", "--migrations", str(tmp_path), url=url)
        time.sleep(0.05 + 0.02 * trial + moments.uniform(0, 0.02))
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=30)
        # Nor "Exception ignored in ...": a signal inside the import machinery's callbacks used
        # to be printed and dropped there.
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, (seed, stderr)
        if process.returncode == -signum and not stdout and not stderr:
            continue  # before the interpreter reached the runner
        finished = [e for e in events_of(stdout) if e["event"] == "release.finished"]
        assert len(finished) == 1, stdout + stderr
        assert process.returncode in (0, 128 + signum), stdout[-3000:]
        summaries += 1
    assert summaries >= 10


def test_statements_nested_past_any_recursion_limit_apply(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """What the server parses, the runner runs: a 1,000-row UNION ALL seed, a 500-term `||`
    and a 3,000-term `+` chain are applied (a `not-analysed` warning names each), and a data
    check after the seed is left to the migration, since the seed's rows were not read."""
    seed = " UNION ALL ".join(f"SELECT {i}, 'v{i}'" for i in range(1000))
    chain = " || ".join(f"'x{i}'" for i in range(500))
    plus = " + ".join("1" for _ in range(3000))
    admin.execute("CREATE TABLE s (a int, b text); INSERT INTO s VALUES (NULL, 'old')")
    directory = write(
        tmp_path,
        {
            "0001_seed.sql": f"INSERT INTO s {seed};\nUPDATE s SET a = {plus} WHERE a IS NULL;\n",
            "0002_chain.sql": f"UPDATE s SET b = {chain} WHERE a = 1;\nALTER TABLE s ALTER a SET NOT NULL;\n",
        },
    )
    result = run_cli("migrate", "--post-deploy", "--no-verify", "--migrations", str(directory), url=url)
    assert result.code == 0, result.stdout[-3000:]
    assert result.finished["applied"] == 2
    warned = [f for f in result.named("preflight.warning") if f["rule"] == "not-analysed"]
    assert [(Path(f["file"]).name, f["line"]) for f in warned] == [
        ("0001_seed.sql", 1),
        ("0001_seed.sql", 2),
        ("0002_chain.sql", 1),
    ]
    assert result.named("preflight.data_unknown") and not result.named("preflight.data")
    assert admin.execute("SELECT count(*), min(a) FROM s").fetchone() == (1001, 0)


def test_a_file_over_a_mebibyte_is_sent_as_written(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any], database: str
) -> None:
    """A data load over 1 MiB goes through the large-file reader: a dollar quote holding `$$;`,
    a typed literal ending in a backslash before a constant holding `;`, a nested comment, a
    BEGIN ATOMIC body and a pg_dump-style function all arrive as PostgreSQL reads them, even
    with a database default of standard_conforming_strings = off; the run says what happened."""
    admin.execute(f"ALTER DATABASE {database} SET standard_conforming_strings = off")
    rows = ",\n".join(f"({i}, '{'x' * 40}')" for i in range(30000))
    text = (
        "CREATE TABLE t (id int, v text);\n"
        f"INSERT INTO t VALUES {rows};\n"
        "INSERT INTO t VALUES (-1, $q$x$$;y$q$), (-2, 'a\\' || 'b;c') /* a /* nested */ ; comment */;\n"
        "CREATE FUNCTION one() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\n"
        "CREATE FUNCTION dumped() RETURNS text LANGUAGE sql AS $_$ SELECT 'DO $$ BEGIN; END $$;' $_$;\n"
    )
    assert len(text) > 1 << 20
    directory = write(tmp_path, {"0001_load.sql": text})
    result = run_cli("migrate", "--no-verify", "--migrations", str(directory), url=url)
    assert result.code == 0, result.stdout[-2000:]
    assert result.finished["applied"] == 1
    assert admin.execute("SELECT count(*) FROM t").fetchone() == (30002,)
    assert admin.execute("SELECT v FROM t WHERE id < 0 ORDER BY id DESC").fetchall() == [
        ("x$$;y",),
        ("a\\b;c",),
    ]
    assert admin.execute("SELECT one(), dumped()").fetchone() == (1, "DO $$ BEGIN; END $$;")
