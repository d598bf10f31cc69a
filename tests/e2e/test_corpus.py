"""The real migration sets in ../shared/corpus (other projects' files, read in place; skipped
when absent): every one applies from empty with exit 0, reruns as a no-op, then snapshot +
verify pass. prisma-formbricks needs pgvector, which this server lacks: it runs from a copy in
the test's own directory with `CREATE EXTENSION "vector"` commented out and its two vector
columns made `real[]`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import CORPUS, Server, history, run_cli

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")

# set -> migrations applied
SETS = {
    "drizzle-ai-chatbot": 9,
    "drizzle-triggerdev-agent": 6,
    "drizzle-dokploy": 186,
    "prisma-documenso": 163,
    "prisma-triggerdev": 820,
    "prisma-formbricks": 167,
}
PGVECTOR = "20241017124431_add_documents_and_insights/migration.sql"


def _without_pgvector(target: Path) -> Path:
    """prisma-formbricks, copied, with the extension line commented out and its two vector(512)
    columns (dropped by a later migration) made real[]."""
    shutil.copytree(CORPUS / "prisma-formbricks", target)
    path = target / PGVECTOR
    text = path.read_text().replace('CREATE EXTENSION IF NOT EXISTS "vector";', "-- (no pgvector)")
    path.write_text(text.replace('"vector" vector(512)', '"vector" real[]'))
    return target


@pytest.mark.parametrize("name", list(SETS))
def test_real_set(
    name: str, tmp_path: Path, url: str, server: Server, admin: psycopg.Connection[Any]
) -> None:
    """Apply from empty with the documented outcome, rerun as a no-op, then snapshot + verify pass."""
    applied = SETS[name]
    formbricks = name == "prisma-formbricks"
    directory = str(_without_pgvector(tmp_path / name) if formbricks else CORPUS / name)
    snapshot = str(tmp_path / "schema.snapshot.json")
    first = run_cli("migrate", "--migrations", directory, "--snapshot", snapshot, url=url, timeout=600)
    assert first.code == 0, first.stdout[-3000:]
    assert first.finished["applied"] == applied
    assert len(history(admin)) == applied
    if name == "drizzle-dokploy":
        assert first.named("migrations.ignored")[0]["file"].endswith("0130_abandoned_dagger.sql")
    rerun = run_cli("migrate", "--migrations", directory, "--snapshot", snapshot, url=url)
    assert rerun.code == 0 and rerun.finished["applied"] == 0
    taken = run_cli(
        "snapshot",
        "--migrations",
        directory,
        "--snapshot",
        snapshot,
        "--scratch-url",
        server.url("postgres"),
        timeout=600,
    )
    assert taken.code == 0, taken.stdout[-2000:]
    verified = run_cli("verify", "--migrations", directory, "--snapshot", snapshot, url=url)
    assert verified.code == 0, verified.stdout[-3000:]
    assert not verified.named("verify.mismatch")
