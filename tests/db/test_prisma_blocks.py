"""Prisma migration files with several BEGIN; ... COMMIT; blocks and plain statements between
them (what Prisma writes when it recreates two enums and drops a column): applied as one
transaction, all or nothing; refused with advice only when a part cannot run in one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from tests.conftest import history, run_cli, write

SETUP = """-- CreateEnum
CREATE TYPE "Role" AS ENUM ('USER', 'ADMIN', 'GUEST');
CREATE TYPE "Plan" AS ENUM ('FREE', 'PRO', 'LEGACY');
CREATE TABLE "User" (id int PRIMARY KEY, role "Role" NOT NULL DEFAULT 'USER', plan "Plan", legacy text);
INSERT INTO "User" VALUES (1, 'ADMIN', 'PRO', 'x');
"""


def _two_blocks(tail: str) -> str:
    return f"""-- AlterEnum
BEGIN;
CREATE TYPE "Role_new" AS ENUM ('USER', 'ADMIN');
ALTER TABLE "User" ALTER COLUMN "role" DROP DEFAULT;
ALTER TABLE "User" ALTER COLUMN "role" TYPE "Role_new" USING ("role"::text::"Role_new");
ALTER TYPE "Role" RENAME TO "Role_old";
ALTER TYPE "Role_new" RENAME TO "Role";
DROP TYPE "Role_old";
ALTER TABLE "User" ALTER COLUMN "role" SET DEFAULT 'USER';
COMMIT;

-- AlterEnum
BEGIN;
CREATE TYPE "Plan_new" AS ENUM ('FREE', 'PRO');
ALTER TABLE "User" ALTER COLUMN "plan" TYPE "Plan_new" USING ("plan"::text::"Plan_new");
ALTER TYPE "Plan" RENAME TO "Plan_old";
ALTER TYPE "Plan_new" RENAME TO "Plan";
DROP TYPE "Plan_old";
COMMIT;

-- AlterTable
{tail}
"""


def _labels(admin: psycopg.Connection[Any], enum: str) -> list[str]:
    return [row[0] for row in admin.execute(f'SELECT unnest(enum_range(NULL::"{enum}"))::text').fetchall()]


def test_several_blocks_apply_as_one_transaction(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """Two enum-recreate blocks and a DROP COLUMN after them: applied, unwrapped, one row."""
    write(
        tmp_path,
        {
            "migration_lock.toml": 'provider = "postgresql"\n',
            "20240101000000_init/migration.sql": SETUP,
            "20240102000000_enums/migration.sql": _two_blocks('ALTER TABLE "User" DROP COLUMN "legacy";'),
        },
    )
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 0, result.stdout
    assert [e["version"] for e in result.named("migration.unwrapped")] == ["20240102000000_enums"]
    assert _labels(admin, "Role") == ["USER", "ADMIN"] and _labels(admin, "Plan") == ["FREE", "PRO"]
    assert [row[1] for row in history(admin)] == ["applied", "applied"]


def test_a_failure_in_the_last_part_undoes_the_blocks_before_it(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """The statement after the blocks fails: the blocks are rolled back with it (Prisma, which
    runs them as written, would have kept them)."""
    write(
        tmp_path,
        {
            "migration_lock.toml": 'provider = "postgresql"\n',
            "20240101000000_init/migration.sql": SETUP,
            "20240102000000_enums/migration.sql": _two_blocks('ALTER TABLE "User" DROP COLUMN "missing";'),
        },
    )
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 1
    assert result.named("migration.failed")[0]["line"] == 22
    assert _labels(admin, "Role") == ["USER", "ADMIN", "GUEST"]
    assert [row[0] for row in history(admin)] == ["20240101000000_init"]


def test_a_part_that_cannot_run_in_a_transaction_is_refused_with_advice(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A concurrent index between the blocks cannot join the transaction: refused before
    anything is applied (exit 5), naming the statement and the fix."""
    write(
        tmp_path,
        {
            "migration_lock.toml": 'provider = "postgresql"\n',
            "20240101000000_init/migration.sql": SETUP,
            "20240102000000_enums/migration.sql": _two_blocks(
                'CREATE INDEX CONCURRENTLY user_plan ON "User" (plan);'
            ),
        },
    )
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 5
    assert "nontransactional-statement" in result.finished["error"]
    assert "file of its own" in result.finished["error"]
    assert history(admin) == []
