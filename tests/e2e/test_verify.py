"""Schema verification: damage a migrated database and expect exit 3 naming the object;
snapshot determinism; `check` green and red; scratch databases always dropped."""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import ROOT, Server, needs_server_binaries, run_cli, start_cli, write

# (damage, object type, name in the mismatch, kind)
DAMAGE = [
    ("ALTER TABLE orders DROP COLUMN note", "column", "public.orders.note", "missing"),
    ("ALTER TABLE orders ALTER note TYPE varchar(20)", "column", "public.orders.note", "changed"),
    ("ALTER TABLE accounts ALTER email DROP NOT NULL", "column", "public.accounts.email", "changed"),
    ("ALTER TABLE orders ALTER note SET NOT NULL", "column", "public.orders.note", "changed"),
    ("ALTER TABLE accounts ALTER plan DROP DEFAULT", "column", "public.accounts.plan", "changed"),
    ("ALTER TABLE accounts ALTER plan SET DEFAULT 'pro'", "column", "public.accounts.plan", "changed"),
    (
        "DROP INDEX orders_account_id_placed_at_idx",
        "index",
        "public.orders_account_id_placed_at_idx",
        "missing",
    ),
    (
        "DROP INDEX orders_account_id_placed_at_idx;"
        " CREATE INDEX orders_account_id_placed_at_idx ON orders (account_id, placed_at DESC) WHERE note IS NULL",
        "index",
        "public.orders_account_id_placed_at_idx",
        "changed",
    ),
    (
        "ALTER TABLE accounts DROP CONSTRAINT accounts_email_key",
        "constraint",
        "public.accounts.accounts_email_key",
        "missing",
    ),
    (
        "ALTER TABLE accounts DROP CONSTRAINT accounts_email_shape",
        "constraint",
        "public.accounts.accounts_email_shape",
        "missing",
    ),
    (
        "ALTER TABLE orders DROP CONSTRAINT orders_account_id_fkey",
        "constraint",
        "public.orders.orders_account_id_fkey",
        "missing",
    ),
    (
        "ALTER TABLE orders DROP CONSTRAINT orders_account_id_fkey;"
        " ALTER TABLE orders ADD CONSTRAINT orders_account_id_fkey FOREIGN KEY (account_id)"
        " REFERENCES accounts (id) ON DELETE RESTRICT",
        "constraint",
        "public.orders.orders_account_id_fkey",
        "changed",
    ),
    ("ALTER TYPE account_status ADD VALUE 'deleted'", "enum", "public.account_status", "changed"),
    ("DROP VIEW account_totals", "view", "public.account_totals", "missing"),
    (
        "CREATE OR REPLACE VIEW account_totals AS SELECT a.id AS account_id, a.email, 0::bigint AS total_cents FROM accounts a",
        "view",
        "public.account_totals",
        "changed",
    ),
    (
        "DROP TRIGGER accounts_touch_updated_at ON accounts",
        "trigger",
        "public.accounts.accounts_touch_updated_at",
        "missing",
    ),
    (
        "CREATE OR REPLACE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$",
        "function",
        "public.touch_updated_at()",
        "changed",
    ),
    ("DROP VIEW account_totals; DROP TABLE orders", "table", "public.orders", "missing"),
    (
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'orders_account_id_placed_at_idx'::regclass",
        "index",
        "public.orders_account_id_placed_at_idx",
        "invalid",  # with what to do, as the README says; not a bare `changed`
    ),
    # who may read what, and the rest that was not compared before
    ("GRANT SELECT (email) ON accounts TO PUBLIC", "column", "public.accounts.email", "changed"),
    ("REVOKE USAGE ON TYPE account_status FROM PUBLIC", "enum", "public.account_status", "changed"),
    ("ALTER TABLE orders ALTER note SET STORAGE MAIN", "column", "public.orders.note", "changed"),
    (
        "ALTER TABLE orders DROP CONSTRAINT orders_account_id_fkey;"
        " ALTER TABLE orders ADD CONSTRAINT orders_account_id_fkey FOREIGN KEY (account_id)"
        " REFERENCES accounts (id) ON DELETE CASCADE NOT VALID",
        "constraint",
        "public.orders.orders_account_id_fkey",
        "changed",
    ),
]


# Damage done at once, and the words verify.mismatch says each in.
IN_WORDS = {
    "ALTER FUNCTION touch_updated_at() SET search_path = public SECURITY DEFINER": "changed function "
    "public.touch_updated_at(): config none → search_path=public; security_definer false → true; its whole definition",
    "ALTER TABLE accounts ALTER email DROP NOT NULL": "changed column public.accounts.email: nullable false → true",
    "DROP VIEW account_totals; DROP TABLE orders": "missing table public.orders (with its 5 columns, 3 constraints, 2 indexes)",
}


@pytest.fixture
def migrated(url: str) -> str:
    result = run_cli("migrate", url=url)
    assert result.code == 0, result.stdout
    return url


@pytest.mark.parametrize(
    ("damage", "object_type", "name", "kind"), DAMAGE, ids=[d[2] + ":" + d[3] for d in DAMAGE]
)
def test_damage_fails_verification(
    migrated: str, admin: psycopg.Connection[Any], damage: str, object_type: str, name: str, kind: str
) -> None:
    """Each kind of damage: exit 3, a verify.mismatch event naming the object."""
    admin.execute(damage)
    result = run_cli("verify", url=migrated)
    assert result.code == 3, result.stdout
    assert result.finished["status"] == "drift"
    found = {(m["object_type"], m["name"], m["kind"]) for m in result.named("verify.mismatch")}
    assert (object_type, name, kind) in found, found
    assert name in result.finished["error"]


def test_differences_read_in_words(migrated: str, admin: psycopg.Connection[Any]) -> None:
    """What differs, attribute by attribute (never two hashes, never `null` for false), and a
    missing table as one line, not one per column."""
    admin.execute("; ".join(IN_WORDS))
    result = run_cli("verify", url=migrated)
    assert result.code == 3, result.stdout
    described = [m["describe"] for m in result.named("verify.mismatch")]
    for words in IN_WORDS.values():
        assert any(words in text for text in described), (words, described)
    assert not any(re.search(r"\bnull\b|body_md5", text) for text in described), described
    assert not [
        m for m in result.named("verify.mismatch") if m["object_type"] == "column" and "orders" in m["name"]
    ]


def test_another_database_is_one_line_not_a_flood(url: str, server: Server, tmp_path: Path) -> None:
    """The URL points at a database the snapshot does not describe (here an empty one): one
    verify.another_database naming the URL's source, no verify.mismatch per object, exit 3."""
    result = run_cli("verify", url=url)
    assert result.code == 3, result.stdout
    assert result.named("verify.another_database")[0] == {
        **result.named("verify.another_database")[0],
        "missing": 2,
        "expected": 2,
        "source": "RELEASE_RUNNER_DATABASE_URL",
    }
    assert result.named("verify.mismatch") == []
    assert result.finished["error"].startswith("the database looks like another one: 2 of the 2 tables")


def test_extra_default_privileges_and_statistics_warn_and_strict_fails(
    migrated: str, admin: psycopg.Connection[Any]
) -> None:
    """ALTER DEFAULT PRIVILEGES and CREATE STATISTICS made by hand are objects only in the
    database: named (a warning), failing with --strict; --ignore-privileges leaves the default
    privileges out."""
    admin.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO PUBLIC;"
        " CREATE STATISTICS orders_stats ON account_id, placed_at FROM orders"
    )
    relaxed = run_cli("verify", url=migrated)
    assert relaxed.code == 0
    found = {(m["object_type"], m["name"], m["kind"]) for m in relaxed.named("verify.mismatch")}
    assert found == {
        ("default privileges", "postgres in public on tables", "extra"),
        ("statistics", "public.orders.orders_stats", "extra"),
    }
    assert run_cli("verify", "--strict", url=migrated).code == 3
    ignored = run_cli("verify", "--ignore-privileges", url=migrated)
    assert {m["object_type"] for m in ignored.named("verify.mismatch")} == {"statistics"}


def test_extra_column_warns_and_strict_fails(migrated: str, admin: psycopg.Connection[Any]) -> None:
    """A column only in the database warns; --strict fails it."""
    admin.execute("ALTER TABLE accounts ADD COLUMN nickname text")
    relaxed = run_cli("verify", url=migrated)
    assert relaxed.code == 0
    extra = relaxed.named("verify.mismatch")[0]
    assert (extra["kind"], extra["name"], extra["level"]) == ("extra", "public.accounts.nickname", "warning")
    strict = run_cli("verify", "--strict", url=migrated)
    assert strict.code == 3


def test_renamed_generated_constraint_is_no_drift(migrated: str, admin: psycopg.Connection[Any]) -> None:
    """A constraint PostgreSQL named, renamed with the same meaning, is not a failure; it is
    reported as a rename (a warning) naming both names."""
    admin.execute("ALTER TABLE orders RENAME CONSTRAINT orders_total_cents_check TO orders_total_check")
    result = run_cli("verify", url=migrated)
    assert result.code == 0, result.stdout
    (renamed,) = result.named("verify.mismatch")
    assert (renamed["kind"], renamed["level"]) == ("renamed", "warning")
    assert "orders_total_cents_check" in renamed["describe"] and "orders_total_check" in renamed["describe"]


def test_migrate_ends_with_verification(migrated: str, admin: psycopg.Connection[Any]) -> None:
    """Nothing pending plus drift is still exit 3; --no-verify is logged and passes."""
    admin.execute("ALTER TABLE orders DROP COLUMN note")
    result = run_cli("migrate", url=migrated)
    assert result.code == 3 and result.finished["status"] == "drift"
    assert result.finished["applied"] == 0
    skipped = run_cli("migrate", "--no-verify", url=migrated)
    assert skipped.code == 0 and skipped.named("verify.skipped")


def test_without_snapshot(tmp_path: Path, url: str, admin: psycopg.Connection[Any]) -> None:
    """No snapshot: one warning and exit 0; a NOT VALID constraint warns (--strict fails it);
    an INVALID index still fails; --require-snapshot makes the missing file an error."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a (id int);\n"})
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 0
    assert len(result.named("verify.no_snapshot")) == 1
    required = run_cli("verify", "--migrations", str(tmp_path), "--require-snapshot", url=url)
    assert required.code == 2 and "schema.snapshot.json" in required.finished["error"]
    admin.execute("ALTER TABLE a ADD CONSTRAINT a_positive CHECK (id > 0) NOT VALID")
    unvalidated = run_cli("verify", "--migrations", str(tmp_path), url=url)
    assert unvalidated.code == 0
    assert unvalidated.named("verify.mismatch")[0]["kind"] == "unvalidated"
    assert run_cli("verify", "--strict", "--migrations", str(tmp_path), url=url).code == 3
    admin.execute("ALTER TABLE a DROP CONSTRAINT a_positive")
    admin.execute("CREATE INDEX a_id ON a (id)")
    admin.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'a_id'::regclass")
    broken = run_cli("verify", "--migrations", str(tmp_path), url=url)
    assert broken.code == 3
    assert broken.named("verify.mismatch")[0]["kind"] == "invalid"


def test_snapshot_is_deterministic(tmp_path: Path, server: Server) -> None:
    """Two snapshots of the same migrations give the same bytes, and match the committed one."""
    shutil.copytree(ROOT / "sql", tmp_path / "sql")
    scratch = server.url("postgres")
    outputs = []
    for _ in range(2):
        result = run_cli("snapshot", "--migrations", str(tmp_path / "sql"), "--scratch-url", scratch)
        assert result.code == 0, result.stdout
        outputs.append((tmp_path / "sql" / "schema.snapshot.json").read_bytes())
    assert outputs[0] == outputs[1] == (ROOT / "sql" / "schema.snapshot.json").read_bytes()
    document = json.loads(outputs[0])
    assert document["format_version"] == 3  # names rendered with search_path = pg_catalog
    assert "public.accounts.email" in document["objects"]["column"]


def _scratch_databases(server: Server) -> list[str]:
    with psycopg.connect(server.admin, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'release_runner_scratch_%'")
        return [row[0] for row in rows]


def test_check_green_then_red(tmp_path: Path, server: Server) -> None:
    """check passes on the example; fails after an unsnapshotted migration and after a
    hand-edited snapshot; the scratch database is dropped every time."""
    shutil.copytree(ROOT / "sql", tmp_path / "sql")
    directory = tmp_path / "sql"
    scratch = ["--migrations", str(directory), "--scratch-url", server.url("postgres")]
    green = run_cli("check", *scratch)
    assert green.code == 0 and green.finished["data_checks"] == "at deploy time"
    console = run_cli("check", *scratch, "--log-format", "console")
    assert "data checks run at deploy time, against the live rows" in console.stdout
    write(directory, {"0007_more.sql": "ALTER TABLE orders ADD COLUMN coupon text;\n"})
    stale = run_cli("check", *scratch)
    assert stale.code == 3
    assert "public.orders.coupon" in stale.finished["error"]
    (directory / "0007_more.sql").unlink()
    snapshot = directory / "schema.snapshot.json"
    snapshot.write_text(snapshot.read_text().replace('"nullable": false', '"nullable": true', 1))
    edited = run_cli("check", *scratch)
    assert edited.code == 3
    snapshot.unlink()
    missing = run_cli("check", *scratch)
    assert missing.code == 3 and "run `release-runner snapshot`" in missing.finished["error"]
    write(directory, {"0008_broken.sql": "ALTER TABLE nope ADD x int;\n"})
    broken = run_cli("check", *scratch)
    assert broken.code == 1
    assert _scratch_databases(server) == []


def test_scratch_database_dropped_on_interrupt(tmp_path: Path, server: Server) -> None:
    """SIGINT during a replay: exit 130 and the temporary database is gone."""
    write(tmp_path, {"0001_slow.sql": "SELECT pg_sleep(30);\n"})
    process = start_cli("check", "--migrations", str(tmp_path), "--scratch-url", server.url("postgres"))
    deadline = time.monotonic() + 20
    while not _scratch_databases(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 130
    assert json.loads(stdout.strip().splitlines()[-1])["status"] == "interrupted"
    assert _scratch_databases(server) == []


@needs_server_binaries
def test_check_with_local_cluster() -> None:
    """The README's first command: `release-runner check` on sql/ with a throwaway cluster."""
    result = run_cli("check")
    assert result.code == 0, result.stdout + result.stderr
    assert result.named("scratch.ready")[0]["source"] == "local cluster"
    assert result.finished["replayed"] == 6


def test_a_snapshot_from_another_major_version_is_named(tmp_path: Path, url: str) -> None:
    """The snapshot records the major version it was taken on; verifying on another one warns
    with verify.server_differs (definitions may render differently), and passes when nothing
    else differs."""
    shutil.copytree(ROOT / "sql", tmp_path / "sql")
    path = tmp_path / "sql" / "schema.snapshot.json"
    document = json.loads(path.read_text())
    assert document["server_major"] >= 14
    document["server_major"] += 1
    path.write_text(json.dumps(document))
    result = run_cli("migrate", "--migrations", str(tmp_path / "sql"), url=url)
    assert result.code == 0, result.stdout
    (differs,) = result.named("verify.server_differs")
    assert differs["snapshot_major"] == differs["server_major"] + 1


def test_replay_failure_gives_no_production_advice(tmp_path: Path, server: Server) -> None:
    """A file that fails in check's throwaway database: the error names the file and says to
    fix it; no `repair` or `DROP INDEX` advice about a database that no longer exists."""
    write(
        tmp_path,
        {
            "0001_a.sql": "CREATE TABLE a (id int);\n",
            "0002_i.sql": "CREATE INDEX CONCURRENTLY i ON nope (id);\n",
        },
    )
    result = run_cli("check", "--migrations", str(tmp_path), "--scratch-url", server.url("postgres"))
    assert result.code == 1, result.stdout
    error = result.finished["error"]
    assert f"{tmp_path}/0002_i.sql:1:1" in error and "42P01" in error and "fix the file" in error
    assert "repair" not in error and "DROP INDEX" not in error


def test_a_view_rendered_by_another_major_version_is_compared_by_this_one(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A snapshot from another major version whose view text differs only in rendering (as
    PostgreSQL 16 leaves out the table qualification of a single-table view): this server
    renders the snapshot's text again, the two agree, verify passes. A real change to the view still fails,
    and on the same major version a text difference is not excused."""
    shutil.copytree(ROOT / "sql", tmp_path / "sql")
    path = tmp_path / "sql" / "schema.snapshot.json"
    document = json.loads(path.read_text())
    view = document["objects"]["view"]["public.account_totals"]
    view["definition"] = (  # one line, lower case, the constant's cast left implicit
        "select a.id as account_id, a.email, coalesce(sum(o.total_cents), 0) as total_cents "
        "from public.accounts a left join public.orders o on o.account_id = a.id group by a.id, a.email;"
    )
    path.write_text(json.dumps(document))
    same_major = run_cli("migrate", "--migrations", str(tmp_path / "sql"), url=url)
    assert same_major.code == 3, same_major.stdout
    document["server_major"] += 1
    path.write_text(json.dumps(document))
    other_major = run_cli("verify", "--migrations", str(tmp_path / "sql"), url=url)
    assert other_major.code == 0, other_major.stdout
    assert other_major.named("verify.server_differs")[0]["rendered_here"] == 1
    admin.execute(
        "CREATE OR REPLACE VIEW account_totals AS SELECT a.id AS account_id, a.email, 0::bigint AS total_cents"
        " FROM accounts a"
    )
    drifted = run_cli("verify", "--migrations", str(tmp_path / "sql"), url=url)
    assert drifted.code == 3, drifted.stdout
    assert [m["name"] for m in drifted.named("verify.mismatch")] == ["public.account_totals"]
