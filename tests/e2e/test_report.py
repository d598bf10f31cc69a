"""The Markdown report (`--report FILE`, and $GITHUB_STEP_SUMMARY for plan and check): each
section a reader needs is there for a representative run, and no value of a row or a
migration ever is."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import psycopg

from tests.conftest import ROOT, Server, cli_env, run_cli, write

SECRET = "sk_live_report_77"


def test_plan_reports_pending_locks_findings_and_data(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A pull request's view: pending files with the locks they take and their findings, the
    data check that would refuse, in the file and appended to GitHub's step summary."""
    admin.execute(f"CREATE TABLE t (id int, a text); INSERT INTO t VALUES (1, NULL), (2, '{SECRET}')")
    directory = write(tmp_path / "sql", {"0001_not_null.sql": "ALTER TABLE t ALTER COLUMN a SET NOT NULL;\n"})
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    report = tmp_path / "plan.md"
    env = cli_env(url, GITHUB_STEP_SUMMARY=str(summary))
    planned = run_cli(
        "plan", "--post-deploy", "--migrations", str(directory), "--report", str(report), env=env
    )
    assert planned.code == 5, planned.stderr[-2000:]
    text = report.read_text()
    assert text.startswith(
        "## release-runner plan: refused (exit 5)\n\nrefused (exit 5): migrate would refuse: the findings are listed with the pending migrations  \nplan changed nothing ("
    )
    assert "### Pending migrations" in text and "ACCESS EXCLUSIVE" in text and "set-not-null" in text
    assert "### Data checks" in text and "not-null" in text and "at least" not in text
    assert summary.read_text() == "earlier step\n" + text
    assert SECRET not in text


def test_migrate_reports_what_was_applied_and_verified(tmp_path: Path, url: str) -> None:
    directory = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", directory)
    report = tmp_path / "deploy.md"
    result = run_cli("migrate", "--migrations", str(directory), "--report", str(report), url=url)
    assert result.code == 0, result.stdout[-2000:]
    text = report.read_text()
    assert text.startswith("## release-runner migrate: ok (exit 0)")
    assert "\napplied 6 migrations in " in text and text.count("\n- `") >= 6
    assert "### Verification" in text and "verified:" in text


def test_a_failed_deploy_reports_the_failure_without_its_values(tmp_path: Path, url: str) -> None:
    directory = write(
        tmp_path,
        {"0001_a.sql": "CREATE TABLE a (id int);\n", "0002_cast.sql": f"SELECT '{SECRET}'::int;\n"},
    )
    report = tmp_path / "deploy.md"
    result = run_cli("migrate", "--migrations", str(directory), "--report", str(report), url=url)
    assert result.code == 1
    text = report.read_text()
    assert "### Failed" in text and "SQLSTATE 22P02" in text and "0002_cast.sql:1" in text
    assert "### Applied" in text and "0001_a.sql" in text
    assert SECRET not in text


def test_check_appends_to_the_step_summary(tmp_path: Path, server: Server) -> None:
    directory = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", directory)
    summary = tmp_path / "summary.md"
    env = cli_env(None, GITHUB_STEP_SUMMARY=str(summary))
    result = run_cli(
        "check", "--migrations", str(directory), "--scratch-url", server.url("postgres"), env=env
    )
    assert result.code == 0, result.stdout[-2000:]
    assert summary.read_text().startswith("## release-runner check: ok (exit 0)")
