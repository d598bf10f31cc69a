"""The snapshot and the comparison do not depend on the session: a role's search_path,
PGOPTIONS, the URL's options, or a migration that sets search_path, never make drift appear."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import ROLE, Server, cli_env, run_cli, write

FILES = {
    "0001_app.sql": "CREATE SCHEMA app;\nSET search_path = app;\n"
    "CREATE TABLE t (id serial PRIMARY KEY, born date DEFAULT '2020-01-31', "
    "n numeric DEFAULT 0.1 CHECK (n < 1.5));\n"
    "CREATE TABLE u (id int REFERENCES t (id));\n",
}


@pytest.mark.parametrize("setup", ["role", "pgoptions", "url options"])
def test_no_false_drift_whatever_the_session_sets(
    tmp_path: Path, server: Server, database: str, admin: psycopg.Connection[Any], setup: str
) -> None:
    """snapshot on a plain scratch database, then migrate twice with the target's session set
    another way (search_path, DateStyle): exit 0 both times, no mismatch."""
    write(tmp_path, FILES)
    snapshot = run_cli("snapshot", "--migrations", str(tmp_path), "--scratch-url", server.url("postgres"))
    assert snapshot.code == 0, snapshot.stdout
    url = server.url(database)
    env = cli_env(url)
    if setup == "role":
        admin.execute(f"ALTER ROLE {ROLE} IN DATABASE {database} SET search_path = app, public")
        admin.execute(f"ALTER ROLE {ROLE} IN DATABASE {database} SET DateStyle = 'German'")
    elif setup == "pgoptions":
        env["PGOPTIONS"] = "-c search_path=app,public -c DateStyle=SQL,DMY"
    else:
        env["RELEASE_RUNNER_DATABASE_URL"] = url + "?options=-c%20search_path%3Dapp%2Cpublic"
    for attempt in (1, 2):
        result = run_cli("migrate", "--migrations", str(tmp_path), env=env)
        assert result.code == 0, f"run {attempt}: " + json.dumps(result.named("verify.mismatch"))[:2000]
        assert not result.named("verify.mismatch")
