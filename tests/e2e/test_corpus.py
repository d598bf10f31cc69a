"""The real migration sets in ../shared/corpus (other projects' files, read in place; skipped
when absent): apply from empty with the right count or the documented failure, rerun as a
no-op, then snapshot + verify pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import CORPUS, Server, history, run_cli

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")

# set -> (exit code, migrations applied)
SETS = {
    "drizzle-ai-chatbot": (0, 9),
    "drizzle-triggerdev-agent": (0, 6),
    "drizzle-dokploy": (0, 186),
    "prisma-documenso": (0, 163),
    "prisma-triggerdev": (0, 820),
    # pgvector is not on this server: stops cleanly at 20241017124431_add_documents_and_insights.
    "prisma-formbricks": (1, 97),
}


@pytest.mark.parametrize("name", list(SETS))
def test_real_set(
    name: str, tmp_path: Path, url: str, server: Server, admin: psycopg.Connection[Any]
) -> None:
    """Apply from empty with the documented outcome, rerun as a no-op, then snapshot + verify pass."""
    code, applied = SETS[name]
    directory = str(CORPUS / name)
    snapshot = str(tmp_path / "schema.snapshot.json")
    first = run_cli("migrate", "--migrations", directory, "--snapshot", snapshot, url=url, timeout=600)
    assert first.code == code, first.stdout[-3000:]
    assert first.finished["applied"] == applied
    assert len(history(admin)) == applied
    if code:
        assert first.finished["status"] == "partial"
        assert first.finished["migration"].endswith("20241017124431_add_documents_and_insights/migration.sql")
        assert first.named("migration.failed")[0]["sqlstate"] == "0A000"
        return
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
