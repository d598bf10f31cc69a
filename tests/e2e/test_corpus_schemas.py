"""Verification on large real schemas written by other people (../shared/corpus: dhis2, 473
tables; lago, a pg_dump with a partitioned table and a second schema), read in place and
skipped when absent: the snapshot of a replay and a migrate under every session setup agree,
with not a single mismatch, warnings included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import CORPUS, ROLE, Server, cli_env, run_cli

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")


def _dhis2() -> str:
    # PostGIS is not on this server; a stand-in type keeps the geometry columns (corpus README).
    return (
        "CREATE DOMAIN geometry AS bytea;\n" + (CORPUS / "schema-dhis2" / "dhis2_base_schema.sql").read_text()
    )


def _lago() -> str:
    # pg_partman is not on this server (corpus README): its CREATE EXTENSION is left out.
    text = (CORPUS / "schema-lago" / "structure.sql").read_text()
    return text.replace(
        "CREATE EXTENSION IF NOT EXISTS pg_partman", "-- CREATE EXTENSION IF NOT EXISTS pg_partman"
    )


SCHEMAS = {"dhis2": _dhis2, "lago": _lago}
# Every run also has a last migration that leaves search_path empty (pg_dump's preamble line),
# which lago's own file does as well.
SETUPS = ["plain", "role search_path and DateStyle", "PGOPTIONS", "URL options"]


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_no_drift_on_a_real_schema_under_any_session_setup(
    tmp_path: Path, server: Server, admin: psycopg.Connection[Any], database: str, name: str
) -> None:
    """Snapshot from a replay, then migrate a fresh database under each session setup: exit 0
    and no verify.mismatch at all."""
    directory = tmp_path / "sql"
    directory.mkdir()
    (directory / "0001_schema.sql").write_text(SCHEMAS[name]())
    (directory / "0002_empty_search_path.sql").write_text(
        "SELECT pg_catalog.set_config('search_path', '', false);\n"
    )
    snapshot = run_cli(
        "snapshot", "--migrations", str(directory), "--scratch-url", server.url("postgres"), timeout=300
    )
    assert snapshot.code == 0, snapshot.stdout[-3000:]
    for setup in SETUPS:
        target = f"{database}_{SETUPS.index(setup)}"
        admin.execute(f"CREATE DATABASE {target}")
        try:
            env = cli_env(server.url(target))
            if setup == "role search_path and DateStyle":
                admin.execute(f"ALTER ROLE {ROLE} IN DATABASE {target} SET search_path = public, pg_catalog")
                admin.execute(f"ALTER ROLE {ROLE} IN DATABASE {target} SET DateStyle = 'German'")
            elif setup == "PGOPTIONS":
                env["PGOPTIONS"] = "-c search_path=public,pg_catalog -c DateStyle=SQL,DMY"
            elif setup == "URL options":
                env["RELEASE_RUNNER_DATABASE_URL"] += "?options=-c%20search_path%3Dpublic%2Cpg_catalog"
            result = run_cli("migrate", "--migrations", str(directory), env=env, timeout=300)
            assert result.code == 0, f"{setup}: " + result.stdout[-3000:]
            assert not result.named("verify.mismatch"), (setup, result.named("verify.mismatch")[:5])
        finally:
            admin.execute(f"DROP DATABASE {target} WITH (FORCE)")
