"""`release-runner history`: who applied what, when, in which release and how long it took,
as a table and as JSON, read-only."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import cli_env, run_cli, write


def test_history_lists_every_row_with_its_release(tmp_path: Path, url: str) -> None:
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a (id int);\n", "0002_b.sql": "SELECT pg_sleep(0.05);\n"})
    env = cli_env(url, FLY_IMAGE_REF="registry.fly.io/app:deployment-42")
    assert run_cli("migrate", "--no-verify", "--migrations", str(tmp_path), env=env).code == 0
    shown = run_cli("history", "--format", "json", "--migrations", str(tmp_path), url=url)
    assert shown.code == 0, shown.stderr[-2000:]
    rows = json.loads(shown.stdout)["history"]
    assert [(r["version"], r["status"], r["release"]) for r in rows] == [
        ("0001", "applied", "registry.fly.io/app:deployment-42"),
        ("0002", "applied", "registry.fly.io/app:deployment-42"),
    ]
    assert rows[1]["duration_ms"] >= 50 and rows[0]["applied_by"] and rows[0]["run_id"]
    table = run_cli("history", "--migrations", str(tmp_path), url=url).stdout.splitlines()
    assert table[0].split()[:3] == ["VERSION", "STATUS", "MODE"]
    assert table[2].startswith("0002") and "deployment-42" in table[2]


def test_status_says_how_many_the_history_records(tmp_path: Path, url: str) -> None:
    """status's release.finished counts what the history holds (`applied` stays what this run
    applied: none), and the console says it in words."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a (id int);\n", "0002_b.sql": "SELECT 1;\n"})
    write(tmp_path / "one", {"0001_a.sql": "CREATE TABLE a (id int);\n"})
    assert run_cli("migrate", "--no-verify", "--migrations", str(tmp_path / "one"), url=url).code == 0
    status = run_cli("status", "--migrations", str(tmp_path), url=url)
    finished = json.loads(status.stderr.splitlines()[-1])
    assert (finished["applied_total"], finished["pending"], finished["applied"]) == (1, 1, 0)
    words = run_cli("status", "--log-format", "console", "--migrations", str(tmp_path), url=url)
    assert words.stderr.splitlines()[-1].startswith("status: 1 applied, 1 pending (")
