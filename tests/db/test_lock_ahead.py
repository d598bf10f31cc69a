"""Lock-ahead on a real PostgreSQL: the modes it takes are the ones each statement takes
(checked against pg_locks, never stronger, never weaker), and an app reading the first table of a
migration never waits behind the runner while the runner waits for a later table."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from release_runner.core import lock_ahead as lock_ahead_module
from release_runner.core.lock_ahead import _CONFLICTS, LockMode
from release_runner.core.migrations import read_directory
from release_runner.db import connection
from tests.conftest import Server, history, run_cli, start_cli, write

SETUP = """
CREATE TABLE a (id int PRIMARY KEY, x int, y text);
CREATE TABLE b (id int PRIMARY KEY);
CREATE TABLE p (id int, k int) PARTITION BY LIST (k);
CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);
ALTER TABLE p ADD CONSTRAINT p_k_positive CHECK (k > 0);
CREATE TABLE c (id int, k int CONSTRAINT p_k_positive CHECK (k > 0));
CREATE TABLE child (id int PRIMARY KEY, a_id int REFERENCES a (id), b_id int,
    CONSTRAINT child_b FOREIGN KEY (b_id) REFERENCES b (id));
CREATE INDEX a_x ON a (x);
ALTER TABLE a ADD CONSTRAINT a_x_pos CHECK (x > 0) NOT VALID;
CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER tr BEFORE INSERT ON a FOR EACH ROW EXECUTE FUNCTION f();
"""
STATEMENTS = [
    "ALTER TABLE a ADD COLUMN z int",
    "ALTER TABLE a VALIDATE CONSTRAINT a_x_pos",
    "ALTER TABLE a ADD CONSTRAINT fk FOREIGN KEY (x) REFERENCES b (id) NOT VALID",
    "ALTER TABLE a ALTER x SET STATISTICS 100, ADD COLUMN q int",
    "ALTER TABLE a SET (fillfactor = 70)",
    "ALTER TABLE p ATTACH PARTITION c FOR VALUES IN (2)",
    "ALTER TABLE p DETACH PARTITION p1",
    "ALTER TABLE p ADD COLUMN z int",
    "ALTER TABLE ONLY p ALTER COLUMN id SET DEFAULT 1",
    "CREATE INDEX p_k ON p (k)",
    "CREATE TABLE p2 PARTITION OF p FOR VALUES IN (3)",
    "CREATE TABLE n (id int REFERENCES b (id), a_id int, FOREIGN KEY (a_id) REFERENCES public.a (id))",
    "CREATE INDEX a_y ON a (y)",
    "CREATE TRIGGER tr2 AFTER INSERT ON a FOR EACH ROW EXECUTE FUNCTION f()",
    "ALTER TABLE a DISABLE TRIGGER tr",
    "DROP TRIGGER tr ON a",
    "DROP INDEX a_x",
    "ALTER TABLE a RENAME COLUMN y TO w",
    "ALTER TABLE a RENAME CONSTRAINT a_x_pos TO q",
    "TRUNCATE c, b, child",
    "UPDATE a SET x = 1",
    "INSERT INTO a VALUES (1)",
    "DELETE FROM a",
    "CREATE POLICY pol ON a USING (true)",
    "CREATE RULE r AS ON DELETE TO c DO INSTEAD NOTHING",
    "REINDEX TABLE a",
    "ALTER TABLE a ALTER x DROP DEFAULT",
    "DROP TABLE child",
    "ALTER TABLE child DROP COLUMN a_id",
    "ALTER TABLE child DROP COLUMN id",
    "ALTER TABLE child DROP CONSTRAINT child_b",
    "ALTER TABLE c ADD COLUMN a_id int REFERENCES a (id)",
    "CREATE TABLE e (id int, a_id int, CONSTRAINT f FOREIGN KEY (a_id) REFERENCES a (id))",
]
_PG_MODE = {
    "RowExclusiveLock": "ROW EXCLUSIVE",
    "ShareUpdateExclusiveLock": "SHARE UPDATE EXCLUSIVE",
    "ShareLock": "SHARE",
    "ShareRowExclusiveLock": "SHARE ROW EXCLUSIVE",
    "AccessExclusiveLock": "ACCESS EXCLUSIVE",
}


def _held(conn: psycopg.Connection[Any], *statements: str) -> dict[str, set[str]]:
    """The locks these statements leave held on the tables that existed before them (a table
    they drop included, a table they create left out), as pg_locks shows them before the
    transaction ends. ACCESS SHARE and ROW SHARE are left out: they block nobody but ACCESS
    EXCLUSIVE."""
    tables = dict(
        conn.execute(
            "SELECT oid, relname FROM pg_class WHERE relkind IN ('r', 'p') "
            "AND relnamespace = 'public'::regnamespace"
        ).fetchall()
    )
    conn.execute("BEGIN")
    for statement in statements:
        conn.execute(statement)
    rows = conn.execute(
        "SELECT relation, mode FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation'"
    ).fetchall()
    conn.execute("ROLLBACK")
    held: dict[str, set[str]] = {}
    for oid, mode in rows:
        if oid in tables and mode in _PG_MODE:
            held.setdefault(tables[oid], set()).add(_PG_MODE[mode])
    return held


def test_modes_match_what_postgresql_takes(tmp_path: Path, admin: psycopg.Connection[Any]) -> None:
    """For each statement kind, the lock-ahead block itself run on the server: it holds, table
    by table, locks that conflict with exactly what the statement's own locks conflict with.
    Never weaker (the statement would wait again, holding the rest), never stronger (it would
    block the app for the whole migration)."""
    admin.execute(SETUP)
    for number, statement in enumerate(STATEMENTS):
        write(tmp_path / str(number), {"0001_x.sql": statement + ";\n"})
        statements = read_directory(tmp_path / str(number)).migrations[0].statements
        block = lock_ahead_module.block(lock_ahead_module.needed(statements), 1000)
        ahead = _held(admin, block) if block else {}
        taken = _held(admin, statement)
        assert set(ahead) == set(taken), (statement, ahead, taken)
        for table, modes in taken.items():
            ahead_conflicts = set().union(*(_CONFLICTS[LockMode(m)] for m in ahead[table]))
            statement_conflicts = set().union(*(_CONFLICTS[LockMode(m)] for m in modes))
            assert ahead_conflicts == statement_conflicts, (statement, table, ahead[table], modes)


def _hold(url: str, table: str, seconds: float, ready: threading.Barrier) -> None:
    """A long transaction that read `table` (an app's report, say): ACCESS SHARE until it ends."""
    with psycopg.connect(url) as conn:
        conn.execute(f"SELECT count(*) FROM {table}")
        ready.wait()
        time.sleep(seconds)  # the fault: how long the lock is held, not a synchronisation
        conn.rollback()


@contextmanager
def _holding(server: Server, database: str, **tables: float) -> Iterator[None]:
    """Sessions that read each table and hold its lock for the seconds given, from the moment
    the block starts; the block ends once they all have."""
    ready = threading.Barrier(len(tables) + 1)
    url = connection.with_dbname(server.admin, database)
    holders = [threading.Thread(target=_hold, args=(url, t, s, ready)) for t, s in tables.items()]
    for holder in holders:
        holder.start()
    ready.wait()
    try:
        yield
    finally:
        for holder in holders:
            holder.join()


def _read_until(url: str, done: threading.Event, waits: list[float]) -> None:
    """The app: reads of table `a` back to back, each timed."""
    with psycopg.connect(url, autocommit=True) as conn:
        while not done.is_set():
            started = time.monotonic()
            conn.execute("SELECT count(*) FROM a")
            waits.append(time.monotonic() - started)
            time.sleep(0.01)


def test_reader_of_the_first_table_never_waits_for_a_later_one(
    tmp_path: Path, server: Server, database: str, url: str, admin: psycopg.Connection[Any]
) -> None:
    """`ALTER TABLE a; ALTER TABLE b; ALTER TABLE c` while long transactions read b (2.5 s) and
    c (5 s), lock_timeout 3 s. Statement by statement, the runner would hold `a` for 5 s while
    waiting; with lock-ahead no read of `a` waits more than a round (at most 1 s): the bound
    asserted is the issue's, lock_timeout + 0.5 s. The migration still applies, once, after a
    lock-timeout retry that names the blocker."""
    admin.execute("CREATE TABLE a (id int); CREATE TABLE b (id int); CREATE TABLE c (id int)")
    write(
        tmp_path,
        {"0001_abc.sql": "ALTER TABLE a ADD x int;\nALTER TABLE b ADD x int;\nALTER TABLE c ADD x int;\n"},
    )
    trusted = connection.with_dbname(server.admin, database)
    done = threading.Event()
    waits: list[float] = []
    with _holding(server, database, b=2.5, c=5.0):
        reader = threading.Thread(target=_read_until, args=(trusted, done, waits))
        reader.start()
        process = start_cli(
            "migrate",
            "--migrations",
            str(tmp_path),
            "--lock-timeout",
            "3s",
            "--retries",
            "5",
            "--no-verify",
            url=url,
        )
        try:
            stdout, stderr = process.communicate(timeout=60)
        finally:
            done.set()
            reader.join()
    assert process.returncode == 0, stdout + stderr
    assert [row[1] for row in history(admin)] == ["applied"]
    assert len(waits) > 20, "the reader was starved"
    assert max(waits) < 3.5, sorted(waits)[-5:]
    assert '"migration.retry"' in stdout and '"lock_timeout"' in stdout
    assert '"migration.waiting"' in stdout  # the blockers were named while it waited


@pytest.mark.parametrize(
    ("options", "code"), [(("--lock-timeout", "1s"), 1), (("--lock-timeout", "0", "--time-budget", "3s"), 4)]
)
def test_busy_table_ends_like_a_lock_timeout(
    tmp_path: Path,
    server: Server,
    database: str,
    url: str,
    admin: psycopg.Connection[Any],
    options: tuple[str, ...],
    code: int,
) -> None:
    """A table held past the budget: the attempt ends as the server's own lock timeout would
    (55P03, exit 1, the blocker named, nothing applied). lock_timeout 0 waits without limit,
    as the server's setting does, until the run's time budget cancels it (exit 4)."""
    admin.execute("CREATE TABLE a (id int)")
    write(tmp_path, {"0001_a.sql": "ALTER TABLE a ADD x int;\n"})
    with _holding(server, database, a=8.0):
        result = run_cli(
            "migrate", "--migrations", str(tmp_path), "--retries", "1", "--no-verify", *options, url=url
        )
    assert result.code == code, result.stdout
    [failed] = result.named("migration.failed")
    assert failed["sqlstate"] == ("55P03" if code == 1 else "57014")
    assert failed["blockers"][0]["application_name"] == ""
    assert history(admin) == []
    assert admin.execute(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'a'::regclass AND attname = 'x'"
    ).fetchone() == (0,)


def test_signal_while_taking_locks_ahead_leaves_nothing(
    tmp_path: Path, server: Server, database: str, url: str, admin: psycopg.Connection[Any]
) -> None:
    """SIGTERM while the block waits for a busy table: exit 143, the summary says the migration
    was rolled back, nothing of it applied, and no session of the runner is left holding or
    waiting for anything."""
    admin.execute("CREATE TABLE a (id int); CREATE TABLE b (id int)")
    write(tmp_path, {"0001_ab.sql": "ALTER TABLE a ADD x int;\nALTER TABLE b ADD x int;\n"})
    with _holding(server, database, b=6.0):
        process = start_cli("migrate", "--migrations", str(tmp_path), "--lock-timeout", "20s", url=url)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'release-runner'"
                " AND wait_event_type = 'Lock' AND query LIKE '%release_runner_lock_ahead%'"
            ).fetchone()
            if row and row[0]:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 143, stdout
    last = json.loads(stdout.strip().splitlines()[-1])
    assert last["status"] == "interrupted" and "rolled back" in last["error"], last
    assert history(admin) == []
    columns = admin.execute(
        "SELECT count(*) FROM pg_attribute WHERE attname = 'x' AND attrelid IN ('a'::regclass, 'b'::regclass)"
    )
    assert columns.fetchone() == (0,)
    left = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'release-runner%%'"
    )
    assert left.fetchone() == (0,)


def test_a_column_without_a_foreign_key_locks_no_referenced_table(tmp_path: Path, url: str) -> None:
    """`plan` (and migration.started) list the referenced table of a dropped column only where
    the catalog shows a foreign key on it: child.a_id references a, child.id references nothing."""
    assert (
        run_cli("migrate", "--migrations", str(write(tmp_path / "base", {"0001_s.sql": SETUP})), url=url).code
        == 0
    )
    write(
        tmp_path / "base",
        {"0002_d.sql": "ALTER TABLE child DROP COLUMN a_id;\nALTER TABLE child DROP COLUMN id;\n"},
    )
    planned = run_cli("plan", "--format", "json", "--migrations", str(tmp_path / "base"), url=url)
    (item,) = json.loads(planned.stdout)["pending"]
    assert [step["locks"] for step in item["steps"]] == [
        [
            "child (ACCESS EXCLUSIVE)",
            "the table child.a_id references, if it has a foreign key (ACCESS EXCLUSIVE)",
        ],
        ["child (ACCESS EXCLUSIVE)"],
    ]
