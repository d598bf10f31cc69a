"""Lock-ahead on a real PostgreSQL: the modes it takes are the ones each statement takes
(checked against pg_locks, never stronger, never weaker), and an app reading the first table of a
migration never waits behind the runner while the runner waits for a later table."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from release_runner import db
from release_runner import lock_ahead as lock_ahead_module
from release_runner.lock_ahead import _CONFLICTS
from release_runner.migrations import read_directory
from tests.conftest import Server, history, run_cli, start_cli, write

SETUP = """
CREATE TABLE a (id int PRIMARY KEY, x int, y text);
CREATE TABLE b (id int PRIMARY KEY);
CREATE TABLE p (id int, k int) PARTITION BY LIST (k);
CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);
CREATE TABLE c (id int, k int);
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
    "CREATE TABLE p2 PARTITION OF p FOR VALUES IN (3)",
    "CREATE TABLE n (id int REFERENCES b (id), a_id int, FOREIGN KEY (a_id) REFERENCES public.a (id))",
    "CREATE INDEX a_y ON a (y)",
    "CREATE TRIGGER tr2 AFTER INSERT ON a FOR EACH ROW EXECUTE FUNCTION f()",
    "ALTER TABLE a DISABLE TRIGGER tr",
    "DROP TRIGGER tr ON a",
    "DROP INDEX a_x",
    "ALTER TABLE a RENAME COLUMN y TO w",
    "ALTER TABLE a RENAME CONSTRAINT a_x_pos TO q",
    "TRUNCATE c, b",
    "UPDATE a SET x = 1",
    "INSERT INTO a VALUES (1)",
    "DELETE FROM a",
    "CREATE POLICY pol ON a USING (true)",
    "CREATE RULE r AS ON DELETE TO c DO INSTEAD NOTHING",
    "REINDEX TABLE a",
    "ALTER TABLE a ALTER x DROP DEFAULT",
]
_PG_MODE = {
    "RowExclusiveLock": "ROW EXCLUSIVE",
    "ShareUpdateExclusiveLock": "SHARE UPDATE EXCLUSIVE",
    "ShareLock": "SHARE",
    "ShareRowExclusiveLock": "SHARE ROW EXCLUSIVE",
    "AccessExclusiveLock": "ACCESS EXCLUSIVE",
}


def _taken(conn: psycopg.Connection[Any], statement: str) -> dict[str, set[str]]:
    """The table locks a statement takes, as pg_locks shows them before its transaction ends
    (ACCESS SHARE and ROW SHARE left out: they block nobody but ACCESS EXCLUSIVE)."""
    conn.execute("BEGIN")
    conn.execute(statement)
    rows = conn.execute(
        "SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE l.pid = pg_backend_pid() AND c.relkind IN ('r', 'p') "
        "AND c.relnamespace = 'public'::regnamespace"
    ).fetchall()
    conn.execute("ROLLBACK")
    taken: dict[str, set[str]] = {}
    for table, mode in rows:
        if mode in _PG_MODE:
            taken.setdefault(table, set()).add(_PG_MODE[mode])
    return taken


def test_modes_match_what_postgresql_takes(tmp_path: Path, admin: psycopg.Connection[Any]) -> None:
    """For each statement kind: every lock the statement takes that could make it wait is
    covered by one taken ahead, and nothing taken ahead conflicts with more than the statement's
    own locks do (a stronger lock would block the app for the whole migration)."""
    admin.execute(SETUP)
    for number, statement in enumerate(STATEMENTS):
        write(tmp_path / str(number), {"0001_x.sql": statement + ";\n"})
        ahead: dict[str, list[str]] = {}
        for lock in lock_ahead_module.needed(read_directory(tmp_path / str(number)).migrations[0].statements):
            if lock.of_index:  # DROP INDEX: the index's table
                table = admin.execute(
                    "SELECT indrelid::regclass::text FROM pg_index WHERE indexrelid = to_regclass(%s)",
                    (".".join(lock.name),),
                ).fetchone()
                assert table is not None
                ahead.setdefault(table[0], []).append(lock.mode)
            else:
                ahead.setdefault(lock.name[-1], []).append(lock.mode)
        taken = {t: m for t, m in _taken(admin, statement).items() if t not in ("n", "p2")}  # created
        assert set(ahead) == set(taken), (statement, ahead, taken)
        for table, modes in taken.items():
            ahead_conflicts = set().union(*(_CONFLICTS[m] for m in ahead[table]))
            statement_conflicts = set().union(*(_CONFLICTS[m] for m in modes))
            assert ahead_conflicts == statement_conflicts, (statement, table, ahead[table], modes)


def _hold(url: str, table: str, seconds: float, ready: threading.Barrier) -> None:
    """A long transaction that read `table` (an app's report, say): ACCESS SHARE until it ends."""
    with psycopg.connect(url) as conn:
        conn.execute(f"SELECT count(*) FROM {table}")
        ready.wait()
        time.sleep(seconds)  # the fault: how long the lock is held, not a synchronisation
        conn.rollback()


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
    trusted = db.with_dbname(server.admin, database)
    ready = threading.Barrier(3)
    holders = [
        threading.Thread(target=_hold, args=(trusted, "b", 2.5, ready)),
        threading.Thread(target=_hold, args=(trusted, "c", 5.0, ready)),
    ]
    for holder in holders:
        holder.start()
    ready.wait()
    done = threading.Event()
    waits: list[float] = []
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
        for holder in holders:
            holder.join()
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
    ready = threading.Barrier(2)
    holder = threading.Thread(target=_hold, args=(db.with_dbname(server.admin, database), "a", 8.0, ready))
    holder.start()
    ready.wait()
    try:
        result = run_cli(
            "migrate", "--migrations", str(tmp_path), "--retries", "1", "--no-verify", *options, url=url
        )
    finally:
        holder.join()
    assert result.code == code, result.stdout
    [failed] = result.named("migration.failed")
    assert failed["sqlstate"] == ("55P03" if code == 1 else "57014")
    assert failed["blockers"][0]["application_name"] == ""
    assert history(admin) == []
    assert admin.execute(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'a'::regclass AND attname = 'x'"
    ).fetchone() == (0,)
