"""The README's adoption walk-throughs, step by step as it writes them, on a real server: from
`drizzle-kit push`, from `prisma migrate deploy` and from `prisma db push`. Each ends with the
first `migrate` after adoption being a no-op that warns about nothing, then a new migration
applied as a deploy would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

from tests.conftest import Run, Server, history, run_cli, write
from tests.e2e.test_adoption import DRIZZLE_FILES, PRISMA_FILES, _drizzle_folder, _prisma_migrate


def _quiet_no_op(run: Run) -> None:
    """Exit 0, nothing applied, verified against the snapshot, and no warning of any kind."""
    assert run.code == 0, run.stdout[-2000:]
    assert run.finished["applied"] == 0
    assert [e["event"] for e in run.events if e.get("level") in ("warning", "error")] == []
    assert run.named("verify.passed")


def _snapshot(directory: Path, server: Server) -> None:
    """Step 2 of each walk: the snapshot, taken where PostgreSQL binaries are (a laptop, CI)."""
    taken = run_cli("snapshot", "--migrations", str(directory), "--scratch-url", server.url("postgres"))
    assert taken.code == 0, taken.stdout[-2000:]


def test_switch_from_drizzle_kit_push(tmp_path: Path, server: Server, url: str) -> None:
    """Production was built by `push` (the schema, no history); the first generated migration
    is snapshotted where a PostgreSQL is at hand; `baseline` on the release Machine then needs
    no scratch database (none is started), records it; the first `migrate` is a quiet no-op and
    the next generated migration is applied."""
    directory = _drizzle_folder(tmp_path / "drizzle")
    with psycopg.connect(url, autocommit=True) as app:  # push, as the app's role
        for name in DRIZZLE_FILES:
            app.execute((directory / name).read_text().replace("--> statement-breakpoint", ""))
    _snapshot(directory, server)
    baseline = run_cli("baseline", "--migrations", str(directory), url=url)
    assert baseline.code == 0, baseline.stdout
    assert not baseline.named("scratch.ready")  # the committed snapshot was enough
    assert baseline.named("baseline.recorded")[0]["count"] == len(DRIZZLE_FILES)
    _quiet_no_op(run_cli("migrate", "--migrations", str(directory), url=url))
    write(directory, {"0004_slug.sql": 'ALTER TABLE "posts" ADD COLUMN "slug" text;\n'})
    journal = json.loads((directory / "meta" / "_journal.json").read_text())
    journal["entries"].append(
        {"idx": 4, "version": "7", "when": 1700000009000, "tag": "0004_slug", "breakpoints": True}
    )
    (directory / "meta" / "_journal.json").write_text(json.dumps(journal))
    _snapshot(directory, server)
    deploy = run_cli("migrate", "--migrations", str(directory), url=url)
    assert deploy.code == 0, deploy.stdout
    assert [e["version"] for e in deploy.named("migration.applied")] == ["0004"]


def test_switch_from_prisma_migrate_deploy(
    tmp_path: Path, server: Server, url: str, admin: psycopg.Connection[Any]
) -> None:
    """`prisma migrate deploy` applied every folder: snapshot, commit, and the first `migrate`
    imports `_prisma_migrations`, applies nothing and warns about nothing; the next folder is
    applied by the runner."""
    directory = write(tmp_path / "prisma" / "migrations", PRISMA_FILES)
    folders = sorted(name.split("/")[0] for name in PRISMA_FILES if "/" in name)
    with psycopg.connect(url, autocommit=True) as app:  # migrate deploy, as the app's role
        _prisma_migrate(app, directory, folders, [])
    _snapshot(directory, server)
    first = run_cli("migrate", "--migrations", str(directory), url=url)
    _quiet_no_op(first)
    assert first.named("history.imported")[0]["count"] == 3
    assert [row[2] for row in history(admin)] == ["imported"] * 3
    _quiet_no_op(run_cli("migrate", "--migrations", str(directory), url=url))
    _next_prisma_migration_is_applied(directory, server, url)


def test_switch_from_prisma_db_push(
    tmp_path: Path, server: Server, url: str, admin: psycopg.Connection[Any]
) -> None:
    """`prisma db push` built the schema with no history: the first migration is generated
    from empty (`prisma migrate diff --from-empty ... > prisma/migrations/0_init/migration.sql`),
    snapshotted, and `baseline` records it; the first `migrate` is a quiet no-op."""
    init = "".join(PRISMA_FILES[name] + ";\n" for name in sorted(PRISMA_FILES) if name.endswith(".sql"))
    with psycopg.connect(url, autocommit=True) as app:  # db push, as the app's role
        app.execute(init)
    directory = write(
        tmp_path / "prisma" / "migrations",
        {"migration_lock.toml": 'provider = "postgresql"\n', "0_init/migration.sql": init},
    )
    _snapshot(directory, server)
    baseline = run_cli("baseline", "--migrations", str(directory), url=url)
    assert baseline.code == 0, baseline.stdout[-2000:]
    assert [row[0] for row in history(admin)] == ["0_init"]
    _quiet_no_op(run_cli("migrate", "--migrations", str(directory), url=url))
    _next_prisma_migration_is_applied(directory, server, url)


def _next_prisma_migration_is_applied(directory: Path, server: Server, url: str) -> None:
    write(directory, {"20250101000000_bio/migration.sql": 'ALTER TABLE "User" ADD COLUMN "bio" TEXT;\n'})
    _snapshot(directory, server)
    deploy = run_cli("migrate", "--migrations", str(directory), url=url)
    assert deploy.code == 0, deploy.stdout[-2000:]
    assert [e["version"] for e in deploy.named("migration.applied")] == ["20250101000000_bio"]
