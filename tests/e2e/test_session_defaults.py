"""The session the runner runs in is its own, whatever a migration left in the role's or the
database's defaults: its login role, and triggers and foreign keys on."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import psycopg

from tests.conftest import Server, history, run_cli, table_exists, write


def _login_role(admin: psycopg.Connection[Any], superuser: bool) -> tuple[str, str]:
    """A login role of the test's own, and its password."""
    name, password = f"deployer_{secrets.token_hex(4)}", secrets.token_hex(8)
    admin.execute(f"CREATE ROLE {name} LOGIN {'SUPERUSER' if superuser else ''} PASSWORD '{password}'")
    admin.execute(f"GRANT ALL ON DATABASE {admin.info.dbname} TO {name}")
    return name, password


def test_a_role_default_set_by_a_migration_does_not_change_who_the_runner_is(
    tmp_path: Path, server: Server, database: str, admin: psycopg.Connection[Any]
) -> None:
    """`ALTER ROLE CURRENT_USER SET role = other` in a migration: the next deploy still runs as
    its login role (RESET ROLE would go back to `other`), writes its history and applies."""
    name, password = _login_role(admin, superuser=True)
    other = f"app_{name}"
    admin.execute(f"CREATE ROLE {other} NOLOGIN")
    url = f"postgresql://{name}:{password}@{server.host}:{server.port}/{database}"
    try:
        write(tmp_path, {"0001_default.sql": f"ALTER ROLE CURRENT_USER SET role = {other};\n"})
        assert run_cli("migrate", "--no-verify", "--migrations", str(tmp_path), url=url).code == 0
        write(tmp_path, {"0002_next.sql": "CREATE TABLE next (id int);\n"})
        result = run_cli("migrate", "--no-verify", "--migrations", str(tmp_path), url=url)
        assert result.code == 0, result.stdout[-2000:]
        owner = admin.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'next'").fetchone()
        assert owner == (name,)
        assert [row[0] for row in history(admin)] == ["0001", "0002"]
    finally:
        admin.execute(f"ALTER ROLE {name} RESET ALL")
        admin.execute(f"REASSIGN OWNED BY {name} TO CURRENT_USER; DROP OWNED BY {name}")
        admin.execute(f"DROP ROLE {name}; DROP ROLE {other}")


def test_a_database_default_of_replica_never_switches_checks_off(
    tmp_path: Path, server: Server, database: str, url: str, admin: psycopg.Connection[Any]
) -> None:
    """`ALTER DATABASE ... SET session_replication_role = replica`: the runner sets `origin`
    back, so a foreign key still refuses an orphan row (exit 1); a role that may not set it
    back is refused with what to do (exit 2), nothing applied."""
    admin.execute(f"ALTER DATABASE {database} SET session_replication_role = replica")
    write(
        tmp_path,
        {
            "0001_orphan.sql": "CREATE TABLE p (id int PRIMARY KEY);\n"
            "CREATE TABLE c (p int REFERENCES p);\nINSERT INTO c VALUES (7);\n"
        },
    )
    checked = run_cli("migrate", "--no-verify", "--migrations", str(tmp_path), url=url)
    assert checked.code == 1 and checked.named("migration.failed")[0]["sqlstate"] == "23503", checked.stdout
    name, password = _login_role(admin, superuser=False)
    try:
        other_url = f"postgresql://{name}:{password}@{server.host}:{server.port}/{database}"
        refused = run_cli("migrate", "--no-verify", "--migrations", str(tmp_path), url=other_url)
        assert refused.code == 2, refused.stdout[-2000:]
        assert "RESET session_replication_role" in refused.finished["error"]
        assert not table_exists(admin, "p")
    finally:
        admin.execute(f"DROP OWNED BY {name}; DROP ROLE {name}")
