"""Adopting databases that other tools maintained: drizzle-kit's and Prisma's history is
imported, never re-applied; a database built by `drizzle-kit push` is baselined only when its
schema really matches."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import psycopg

from tests.conftest import ROLE, ROOT, Server, history, run_cli, table_exists, write

DRIZZLE_FILES = {
    "0000_users.sql": 'CREATE TABLE "users" ("id" serial PRIMARY KEY, "email" text NOT NULL);\n',
    "0001_posts.sql": 'CREATE TABLE "posts" ("id" serial PRIMARY KEY, "user_id" integer);\n--> statement-breakpoint\n'
    'ALTER TABLE "posts" ADD CONSTRAINT "posts_user_id_fk" FOREIGN KEY ("user_id") REFERENCES "users"("id");',
    "0002_tags.sql": 'CREATE TABLE "tags" ("id" serial PRIMARY KEY);\n',
    "0003_title.sql": 'ALTER TABLE "posts" ADD COLUMN "title" text;\n',
}


def _drizzle_folder(directory: Path) -> Path:
    entries = [
        {"idx": i, "version": "7", "when": 1700000000000 + i * 1000, "tag": name[:-4], "breakpoints": True}
        for i, name in enumerate(DRIZZLE_FILES)
    ]
    write(
        directory,
        {
            **DRIZZLE_FILES,
            "meta/_journal.json": json.dumps({"version": "7", "dialect": "postgresql", "entries": entries}),
        },
    )
    return directory


def _drizzle_migrate(
    admin: psycopg.Connection[Any], directory: Path, count: int, table: str = "drizzle.__drizzle_migrations"
) -> None:
    """What `drizzle-kit migrate` leaves behind after applying the first `count` entries."""
    admin.execute(f"CREATE SCHEMA IF NOT EXISTS {table.split('.')[0]}")
    admin.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, hash text NOT NULL, created_at bigint)")
    journal = json.loads((directory / "meta" / "_journal.json").read_text())
    for entry in journal["entries"][:count]:
        raw = (directory / f"{entry['tag']}.sql").read_bytes()
        admin.execute(raw.decode())
        admin.execute(
            f"INSERT INTO {table} (hash, created_at) VALUES (%s, %s)",
            (hashlib.sha256(raw).hexdigest(), entry["when"]),
        )


def test_drizzle_history_is_imported_and_only_the_rest_applied(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """Half of a drizzle folder applied by drizzle-kit: imported, the other half applied, rerun a no-op."""
    directory = _drizzle_folder(tmp_path / "drizzle")
    _drizzle_migrate(admin, directory, 2)
    result = run_cli("migrate", "--migrations", str(directory), url=url)
    assert result.code == 0, result.stdout
    imported = result.named("history.imported")[0]
    assert (imported["source"], imported["count"]) == ("drizzle", 2)
    assert [e["version"] for e in result.named("migration.applied")] == ["0002", "0003"]
    assert history(admin) == [
        ("0000", "applied", "imported"),
        ("0001", "applied", "imported"),
        ("0002", "applied", "transaction"),
        ("0003", "applied", "transaction"),
    ]
    again = run_cli("migrate", "--migrations", str(directory), url=url)
    assert again.code == 0 and not again.named("history.imported") and again.finished["applied"] == 0


def test_drizzle_history_in_a_configured_table(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """drizzle.config's migrations.schema/.table: named with --drizzle-history."""
    directory = _drizzle_folder(tmp_path / "drizzle")
    _drizzle_migrate(admin, directory, 3, table="app_meta.migrations_log")
    result = run_cli(
        "migrate", "--migrations", str(directory), "--drizzle-history", "app_meta.migrations_log", url=url
    )
    assert result.code == 0, result.stdout
    assert result.named("history.imported")[0]["count"] == 3
    assert [e["version"] for e in result.named("migration.applied")] == ["0003"]


def test_drizzle_row_for_an_edited_file_refuses(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A drizzle row whose file changed since: exit 5, nothing imported or applied."""
    directory = _drizzle_folder(tmp_path / "drizzle")
    _drizzle_migrate(admin, directory, 2)
    (directory / "0001_posts.sql").write_text("-- edited later\n" + DRIZZLE_FILES["0001_posts.sql"])
    result = run_cli("migrate", "--migrations", str(directory), url=url)
    assert result.code == 5
    assert "0001_posts.sql: drizzle applied a different text" in result.finished["error"]
    assert history(admin) == [] and not table_exists(admin, "tags")


PRISMA_FILES = {
    "migration_lock.toml": 'provider = "postgresql"\n',
    "20240101000000_init/migration.sql": 'CREATE TABLE "User" ("id" TEXT NOT NULL, CONSTRAINT "User_pkey" PRIMARY KEY ("id"));\n',
    "20240102000000_role/migration.sql": "CREATE TYPE \"Role\" AS ENUM ('USER', 'ADMIN');\n"
    'ALTER TABLE "User" ADD COLUMN "role" "Role" NOT NULL DEFAULT \'USER\'',
    "20240103000000_name/migration.sql": 'ALTER TABLE "User" ADD COLUMN "name" TEXT;\n',
}


def _prisma_migrate(
    admin: psycopg.Connection[Any], directory: Path, names: list[str], extra: list[tuple[str, bool]]
) -> None:
    """What `prisma migrate deploy` leaves behind: `_prisma_migrations` rows."""
    admin.execute(
        "CREATE TABLE _prisma_migrations (id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL,"
        " finished_at timestamptz, migration_name varchar(255) NOT NULL, logs text, rolled_back_at timestamptz,"
        " started_at timestamptz NOT NULL DEFAULT now(), applied_steps_count integer NOT NULL DEFAULT 0)"
    )
    for number, name in enumerate(names):
        raw = (directory / name / "migration.sql").read_bytes()
        admin.execute(raw.decode())
        admin.execute(
            "INSERT INTO _prisma_migrations VALUES (%s, %s, now(), %s, NULL, NULL, now(), 1)",
            (f"id-{number}", hashlib.sha256(raw).hexdigest(), name),
        )
    for number, (name, rolled_back) in enumerate(extra):
        admin.execute(
            "INSERT INTO _prisma_migrations VALUES (%s, %s, NULL, %s, NULL, CASE WHEN %s THEN now() END, now(), 0)",
            (f"extra-{number}", "0" * 64, name, rolled_back),
        )


def test_prisma_history_is_imported(tmp_path: Path, url: str, admin: psycopg.Connection[Any]) -> None:
    """Finished rows are imported; a rolled-back attempt is ignored; the rest is applied."""
    directory = write(tmp_path / "prisma", PRISMA_FILES)
    _prisma_migrate(
        admin, directory, ["20240101000000_init", "20240102000000_role"], [("20240103000000_name", True)]
    )
    result = run_cli("migrate", "--migrations", str(directory), url=url)
    assert result.code == 0, result.stdout
    assert result.named("history.imported")[0]["count"] == 2
    assert [e["version"] for e in result.named("migration.applied")] == ["20240103000000_name"]
    assert [row[2] for row in history(admin)] == ["imported", "imported", "transaction"]


def test_prisma_row_without_folder_or_unfinished_refuses(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A Prisma row with no folder, or one that never finished: exit 5, nothing recorded."""
    directory = write(tmp_path / "prisma", PRISMA_FILES)
    _prisma_migrate(admin, directory, ["20240101000000_init"], [("20231231000000_gone", False)])
    admin.execute(
        "UPDATE _prisma_migrations SET finished_at = now() WHERE migration_name = '20231231000000_gone'"
    )
    result = run_cli("migrate", "--migrations", str(directory), url=url)
    assert result.code == 5
    assert "20231231000000_gone was applied but has no folder" in result.finished["error"]
    assert history(admin) == []
    admin.execute("DELETE FROM _prisma_migrations WHERE migration_name = '20231231000000_gone'")
    admin.execute("UPDATE _prisma_migrations SET finished_at = NULL")
    unfinished = run_cli("migrate", "--migrations", str(directory), url=url)
    assert unfinished.code == 5 and "never finished" in unfinished.finished["error"]


def _push(admin: psycopg.Connection[Any], role: str = ROLE) -> None:
    """A database built the `drizzle-kit push` way: the schema, no history at all, by the role
    of the database URL that the runner uses too."""
    admin.execute(f"SET ROLE {role}")
    for path in sorted((ROOT / "sql").glob("*.sql")):
        admin.execute(path.read_text())
    admin.execute("RESET ROLE")


def test_baseline_of_a_database_another_role_built(url: str, admin: psycopg.Connection[Any]) -> None:
    """Built by another role than the runner's: baseline names the owners that differ and
    refuses; --ignore-privileges (roles differ between environments) records it."""
    _push(admin, "postgres")
    refused = run_cli("baseline", url=url)
    assert refused.code == 3
    assert "--ignore-privileges" in refused.finished["error"]
    assert {m["object_type"] for m in refused.named("verify.mismatch")} >= {"table", "function"}
    recorded = run_cli("baseline", "--ignore-privileges", url=url)
    assert recorded.code == 0, recorded.stdout


def test_baseline_records_a_matching_database(url: str, admin: psycopg.Connection[Any]) -> None:
    """A pushed database with the full schema baselines; migrate then applies nothing; a second baseline is refused."""
    _push(admin)
    result = run_cli("baseline", url=url)
    assert result.code == 0, result.stdout
    assert result.named("baseline.recorded")[0]["count"] == 6
    assert {row[2] for row in history(admin)} == {"baseline"}
    after = run_cli("migrate", url=url)
    assert after.code == 0 and after.finished["applied"] == 0
    twice = run_cli("baseline", url=url)
    assert twice.code == 2


def test_baseline_refuses_a_missing_column_and_records_nothing(
    url: str, admin: psycopg.Connection[Any]
) -> None:
    """One column missing: exit 3 naming it, nothing recorded; --force records anyway, loudly."""
    _push(admin)
    admin.execute("DROP VIEW account_totals; ALTER TABLE orders DROP COLUMN note")
    result = run_cli("baseline", url=url)
    assert result.code == 3
    assert "missing column public.orders.note" in result.finished["error"]
    assert history(admin) == []
    forced = run_cli("baseline", "--force", url=url)
    assert forced.code == 0 and forced.named("baseline.forced")
    assert len(history(admin)) == 6


def test_baseline_at_an_older_version_replays_to_compare(
    url: str, server: Server, admin: psycopg.Connection[Any]
) -> None:
    """A first `migrate` on a database pushed up to 0003 is refused before anything runs, naming
    what is there and the exact baseline command; that command (the expected schema from a
    replay of 0001-0003) adopts it, and migrate then applies 0004-0006."""
    admin.execute(f"SET ROLE {ROLE}")  # built by the role of the runner's URL
    for path in sorted((ROOT / "sql").glob("000[1-3]_*.sql")):
        admin.execute(path.read_text())
    admin.execute("RESET ROLE")
    first = run_cli("migrate", url=url)
    assert first.code == 5, first.stdout[-2000:]
    assert "no migration history" in first.finished["error"] and not first.named("migration.started")
    command = "release-runner baseline --migrations sql --version 0003"
    assert f"`{command}`" in first.finished["error"]
    result = run_cli(*command.split()[1:], "--scratch-url", server.url("postgres"), url=url)
    assert result.code == 0, result.stdout
    assert len(history(admin)) == 3
    after = run_cli("migrate", url=url)
    assert after.code == 0 and after.finished["applied"] == 3


def test_prisma_database_url_works_as_it_is(tmp_path: Path, url: str, admin: psycopg.Connection[Any]) -> None:
    """A Prisma DATABASE_URL with `?schema=app&connection_limit=5`: libpq would reject it; the
    runner drops those parameters, says so, and puts unqualified names in `app` as Prisma would."""
    admin.execute("CREATE SCHEMA app")
    directory = write(tmp_path / "prisma", PRISMA_FILES)
    result = run_cli("migrate", "--migrations", str(directory), url=url + "?schema=app&connection_limit=5")
    assert result.code == 0, result.stdout
    assert result.named("db.connected")[0]["url_parameters_dropped"] == ["schema", "connection_limit"]
    assert table_exists(admin, 'app."User"')
    assert not table_exists(admin, 'public."User"')


def test_status_prints_every_problem_and_exits_as_migrate_would(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A drizzle history that does not match: `status` still prints its table and the problem
    (it printed nothing), and exits 5 like the migrate it predicts; a CHANGED row likewise (it
    exited 0 'ok')."""
    directory = _drizzle_folder(tmp_path / "drizzle")
    _drizzle_migrate(admin, directory, 2)
    (directory / "0001_posts.sql").write_text("-- edited later\n" + DRIZZLE_FILES["0001_posts.sql"])
    table = run_cli("status", "--migrations", str(directory), url=url)
    assert table.code == 5
    assert "0000" in table.stdout and "drizzle applied a different text" in table.stdout
    document = run_cli("status", "--format", "json", "--migrations", str(directory), url=url)
    assert document.code == 5
    assert any("drizzle applied a different text" in p for p in json.loads(document.stdout)["problems"])


def test_a_prisma_schema_is_created_and_replayed_where_the_target_puts_it(
    tmp_path: Path, server: Server, url: str, admin: psycopg.Connection[Any]
) -> None:
    """`?schema=app` where app does not exist yet: migrate creates it as Prisma does (and says
    so); the snapshot's replay puts the tables in app too, so the first deploy verifies clean
    (it used to fail with drift: public in the replay, app in the target)."""
    directory = write(tmp_path / "prisma", PRISMA_FILES)
    prisma_url = url + "?schema=app"
    snapshot = run_cli(
        "snapshot", "--migrations", str(directory), "--scratch-url", server.url("postgres"), url=prisma_url
    )
    assert snapshot.code == 0, snapshot.stdout
    first = run_cli("migrate", "--migrations", str(directory), url=prisma_url)
    assert first.code == 0, first.stdout
    assert first.named("schema.created")[0]["schema"] == "app"
    assert table_exists(admin, 'app."User"')
    again = run_cli("migrate", "--migrations", str(directory), url=prisma_url)
    assert again.code == 0 and not again.named("schema.created"), again.stdout


def test_the_adopted_tools_own_history_is_not_drift(url: str, admin: psycopg.Connection[Any]) -> None:
    """drizzle-kit's and Prisma's history tables stay after adoption and are read on every run:
    they are neither extras nor drift, even with --strict (issue 21, item 2)."""
    sql = str(ROOT / "sql")
    assert run_cli("migrate", "--migrations", sql, url=url).code == 0
    admin.execute(
        "CREATE SCHEMA drizzle; CREATE TABLE drizzle.__drizzle_migrations (id serial PRIMARY KEY, hash text, created_at bigint);"
        "CREATE TABLE _prisma_migrations (id varchar(36) PRIMARY KEY, checksum varchar(64), migration_name varchar(255))"
    )
    verified = run_cli("verify", "--strict", "--migrations", sql, url=url)
    assert verified.code == 0, verified.stdout[-2000:]
    assert not verified.named("verify.mismatch")


def test_accepting_a_checksum_settles_a_file_drizzle_applied(
    tmp_path: Path, url: str, server: Server, admin: psycopg.Connection[Any]
) -> None:
    """A comment added to a file drizzle applied (and the runner imported): migrate refuses
    (exit 5); `repair --accept-checksum` settles it for every history that judges the file,
    so the next migrate goes on (it used to stay refused by drizzle's old hash)."""
    directory = _drizzle_folder(tmp_path / "drizzle")
    _drizzle_migrate(admin, directory, 2)
    assert run_cli("migrate", "--migrations", str(directory), url=url).code == 0
    edited = directory / "0000_users.sql"
    edited.write_text("-- the users of the app\n" + edited.read_text())
    refused = run_cli("migrate", "--migrations", str(directory), url=url)
    assert refused.code == 5, refused.stdout[-2000:]
    scratch = ("--scratch-url", server.url("postgres"))
    assert run_cli("snapshot", "--migrations", str(directory), *scratch, url=url).code == 0
    # drizzle-kit (here: the test's admin) built the tables, so their owner is another role
    mine = ("--migrations", str(directory), "--ignore-privileges")
    accepted = run_cli("repair", "--accept-checksum", "0000", "--reason", "a comment", *mine, url=url)
    assert accepted.code == 0, accepted.stdout[-2000:]
    after = run_cli("migrate", *mine, url=url)
    assert after.code == 0 and after.finished["applied"] == 0, after.stdout[-2000:]
