"""`release-runner ready`, the readiness check a rollout waits on: every exit code on a real
server, a database ahead of the image (an older release during a rollout) is ready, and the
runner lock held by a deploy does not hold it up."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import psycopg

from release_runner.db.lock import RunnerLock
from tests.conftest import ROOT, run_cli, write


def _ready(directory: Path, url: str, *extra: str) -> Any:
    return run_cli("ready", "--migrations", str(directory), *extra, url=url)


def test_every_answer_of_ready(tmp_path: Path, url: str, admin: psycopg.Connection[Any]) -> None:
    directory = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", directory)
    assert _ready(directory, url).code == 6  # nothing applied: behind
    assert run_cli("migrate", "--migrations", str(directory), url=url).code == 0
    with psycopg.connect(url, autocommit=True) as deploy:  # a deploy holds the runner lock
        deploy.execute("SELECT pg_advisory_lock(%s)", (RunnerLock.of("release_runner").key,))
        ready = _ready(directory, url, "--verify")
    assert ready.code == 0, ready.stdout[-2000:]
    assert ready.finished["duration_ms"] < 2000
    write(
        directory, {"0007_more.sql": "-- release-runner: post-deploy\nALTER TABLE orders DROP COLUMN note;\n"}
    )
    assert _ready(directory, url).code == 0  # a post-deploy migration may wait
    write(directory, {"0008_new.sql": "CREATE TABLE more (id int);\n"})
    behind = _ready(directory, url)
    assert behind.code == 6 and behind.finished["status"] == "behind" and "0008" in behind.finished["error"]
    for name in ("0007_more.sql", "0008_new.sql", "0006_account_totals_view.sql"):
        (directory / name).unlink()  # an older image during a rollout: the database is ahead
    ahead = _ready(directory, url)
    assert ahead.code == 0 and ahead.finished["ahead"] == ["0006"], ahead.stdout[-2000:]
    shutil.copy(ROOT / "sql" / "0006_account_totals_view.sql", directory)
    edited = directory / "0005_account_plan.sql"
    edited.write_text(edited.read_text() + "\n-- edited\n")
    assert _ready(directory, url).code == 5  # not in sync
    edited.write_text((ROOT / "sql" / "0005_account_plan.sql").read_text())
    admin.execute("DROP VIEW account_totals; ALTER TABLE orders DROP COLUMN note")
    assert _ready(directory, url).code == 0 and _ready(directory, url, "--verify").code == 3


def test_ready_on_a_database_that_does_not_answer(tmp_path: Path) -> None:
    result = run_cli("ready", "--connect-timeout", "2s", url="postgresql://u:p@127.0.0.1:9/db")
    assert result.code == 4 and result.finished["status"] == "unreachable"
