"""End to end: `release-runner migrate` against a real PostgreSQL, judged by what a user checks:
exit code, JSON events, history rows and the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from tests.conftest import (
    Server,
    cli_env,
    history,
    run_cli,
    start_cli,
    table_exists,
    write,
)

THREE = {
    "0001_a.sql": "CREATE TABLE a (id int PRIMARY KEY);\n",
    "0002_b.sql": "CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a (id));\n",
    "0003_c.sql": "CREATE TABLE c (id int);\nINSERT INTO c VALUES (1);\n",
}


def test_example_set_applies_verifies_and_reruns_as_noop(url: str, admin: psycopg.Connection[Any]) -> None:
    """The shipped sql/ applies from empty, passes verification, and a rerun applies nothing."""
    first = run_cli("migrate", url=url)
    assert first.code == 0, first.stdout + first.stderr
    assert first.finished["status"] == "ok"
    assert first.finished["applied"] == 6
    assert [e["version"] for e in first.named("migration.applied")] == [f"000{i}" for i in range(1, 7)]
    assert first.named("verify.passed")
    index = next(e for e in first.named("migration.started") if e["version"] == "0004")
    assert index["transaction_mode"] == "no-transaction"
    rows = history(admin)
    assert [r[0] for r in rows] == ["0001", "0002", "0003", "0004", "0005", "0006"]
    assert {r[1] for r in rows} == {"applied"}
    assert rows[3][2] == "no-transaction"
    for event in first.events:
        assert {"timestamp", "level", "event", "run_id"} <= set(event)
    second = run_cli("migrate", url=url)
    assert second.code == 0
    assert second.finished["applied"] == 0
    assert not second.named("migration.started")


def test_history_row_records_who_and_fly_context(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """The row carries checksum, duration, run id and the Fly app/machine/image."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a (id int);\n"})
    env = cli_env(url, FLY_APP_NAME="shop", FLY_MACHINE_ID="m123", FLY_IMAGE_REF="registry/shop:v9")
    result = run_cli("migrate", "--migrations", str(tmp_path), env=env)
    assert result.code == 0
    row = admin.execute(
        "SELECT checksum, duration_ms, applied_by, run_id, app, machine, image FROM release_runner.history"
    ).fetchone()
    assert row is not None
    assert len(row[0]) == 64 and row[1] is not None and row[2]
    assert row[3] == result.finished["run_id"]
    assert row[4:] == ("shop", "m123", "registry/shop:v9")
    assert result.finished["app"] == "shop"


def test_failed_migration_rolls_back_and_reports_partial(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """Earlier migrations stay; the failing one leaves no table and no row; exit 1 partial with
    SQLSTATE and the file position of the failing statement."""
    write(
        tmp_path,
        {
            **THREE,
            "0004_bad.sql": "CREATE TABLE d (id int);\n\nSELECT 1/0;\n",
        },
    )
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 1
    assert result.finished["status"] == "partial"
    assert result.finished["applied"] == 3
    assert result.finished["migration"].endswith("0004_bad.sql")
    failed = result.named("migration.failed")[0]
    assert failed["sqlstate"] == "22012"
    assert (failed["line"], failed["column"]) == (3, 1)
    assert not table_exists(admin, "d")
    assert [r[0] for r in history(admin)] == ["0001", "0002", "0003"]


def test_error_position_points_into_the_file(tmp_path: Path, url: str) -> None:
    """The server's error position becomes file:line:column of the offending token."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a (id int);\nSELECT id,\n       nope FROM a;\n"})
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 1
    assert result.finished["status"] == "failed"
    failed = result.named("migration.failed")[0]
    assert failed["sqlstate"] == "42703"
    assert (failed["line"], failed["column"]) == (3, 8)
    assert "0001_a.sql:3:8" in result.finished["error"]


def test_edited_applied_file_is_refused(tmp_path: Path, url: str, admin: psycopg.Connection[Any]) -> None:
    """An applied file whose text changed: exit 5, nothing run, the file named."""
    write(tmp_path, THREE)
    assert run_cli("migrate", "--migrations", str(tmp_path), url=url).code == 0
    write(tmp_path, {"0002_b.sql": "CREATE TABLE b (id bigint);\n", "0004_d.sql": "CREATE TABLE d ();\n"})
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 5
    assert result.finished["status"] == "refused"
    assert "0002_b.sql" in result.finished["error"] and "edited" in result.finished["error"]
    assert not table_exists(admin, "d")


def test_crlf_and_bom_checkout_is_not_an_edit(tmp_path: Path, url: str) -> None:
    """The same file with CRLF line endings and a BOM has the same checksum."""
    write(tmp_path, THREE)
    assert run_cli("migrate", "--migrations", str(tmp_path), url=url).code == 0
    path = tmp_path / "0003_c.sql"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 0, result.stdout


def test_removed_applied_file_is_refused(tmp_path: Path, url: str) -> None:
    """An applied migration whose file is gone: exit 5, the version named."""
    write(tmp_path, THREE)
    assert run_cli("migrate", "--migrations", str(tmp_path), url=url).code == 0
    (tmp_path / "0002_b.sql").unlink()
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 5
    assert "version 0002" in result.finished["error"] and "gone" in result.finished["error"]


def test_new_file_before_applied_one_is_refused(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A new file that sorts before an applied one: exit 5, nothing applied."""
    write(tmp_path, {"0001_a.sql": THREE["0001_a.sql"], "0003_c.sql": THREE["0003_c.sql"]})
    assert run_cli("migrate", "--migrations", str(tmp_path), url=url).code == 0
    write(tmp_path, {"0002_b.sql": THREE["0002_b.sql"]})
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 5
    assert "0002_b.sql" in result.finished["error"] and "sorts before" in result.finished["error"]
    assert not table_exists(admin, "b")


def test_syntax_error_in_last_file_applies_nothing(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """Preflight reads the whole batch first: a typo in file 4 of 4 leaves nothing applied."""
    write(tmp_path, {**THREE, "0004_typo.sql": "CREATE TABLE d (id int);\nALTER TABEL d ADD x int;\n"})
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 5
    assert result.finished["status"] == "refused"
    error = result.named("preflight.error")[0]
    assert error["rule"] == "syntax-error" and error["line"] == 2
    assert "0004_typo.sql:2:" in result.finished["error"]
    assert not table_exists(admin, "a")
    assert history(admin) == []


def test_lock_held_by_another_session_waits_then_exits_4(tmp_path: Path, url: str) -> None:
    """While another session holds the runner lock: lock.waiting names it, then exit 4 with
    the pending count read without the lock (it was 0 before)."""
    from release_runner.db.lock import RunnerLock

    write(tmp_path, {"0001_a.sql": "CREATE TABLE a ();\n", "0002_b.sql": "CREATE TABLE b ();\n"})
    with psycopg.connect(url, autocommit=True, application_name="other-deploy") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (RunnerLock.of("release_runner").key,))
        result = run_cli("migrate", "--migrations", str(tmp_path), "--lock-wait", "1s", url=url)
        pid = holder.info.backend_pid
    assert result.code == 4
    waiting = result.named("lock.waiting")[0]
    assert waiting["holders"][0]["pid"] == pid
    assert waiting["holders"][0]["application_name"] == "other-deploy"
    assert "lock not acquired" in result.finished["error"]
    assert result.finished["pending"] == 2


def test_four_concurrent_runners_apply_each_migration_once(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """Four runners at once: all exit 0 and every migration is applied exactly once."""
    files = {
        f"{i:04d}_t{i}.sql": f"CREATE TABLE t{i} (id int);\nSELECT pg_sleep(0.02);\n" for i in range(1, 13)
    }
    write(tmp_path, files)
    processes = [start_cli("migrate", "--migrations", str(tmp_path), url=url) for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], outputs
    applied = sum(out.count('"migration.applied"') for out, _ in outputs)
    assert applied == 12
    assert len(history(admin)) == 12


def test_no_transaction_failure_is_recorded_and_blocks_until_repaired(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A failed no-transaction migration is recorded failed; the next run refuses (exit 5)
    until `repair` resolves it; repair refuses anything else."""
    write(
        tmp_path,
        {
            "0001_a.sql": "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1), (1);\n",
            "0002_idx.sql": "CREATE UNIQUE INDEX CONCURRENTLY a_id ON a (id);\n",
        },
    )
    first = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert first.code == 1 and first.finished["status"] == "partial"
    assert "INVALID index" in first.finished["error"]
    assert "DROP INDEX CONCURRENTLY IF EXISTS a_id" in first.finished["error"]
    assert history(admin)[-1] == ("0002", "failed", "no-transaction")
    second = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert second.code == 5 and "repair" in second.finished["error"]
    status = run_cli("status", "--migrations", str(tmp_path), url=url)
    assert "UNRESOLVED" in status.stdout
    wrong = run_cli("repair", "--applied", "0001", "--reason", "x", "--migrations", str(tmp_path), url=url)
    assert wrong.code == 2
    admin.execute("DROP INDEX a_id")
    admin.execute("DELETE FROM a WHERE ctid <> (SELECT min(ctid) FROM a)")
    fixed = run_cli(
        "repair",
        "--forget",
        "0002",
        "--reason",
        "dropped the invalid index",
        "--migrations",
        str(tmp_path),
        url=url,
    )
    assert fixed.code == 0
    assert fixed.named("history.repaired")[0]["reason"] == "dropped the invalid index"
    third = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert third.code == 0, third.stdout
    assert history(admin)[-1] == ("0002", "applied", "no-transaction")


def test_status_and_plan_write_nothing(tmp_path: Path, url: str, admin: psycopg.Connection[Any]) -> None:
    """status/plan/migrate --dry-run are read-only: no history table appears; JSON on stdout."""
    write(tmp_path, THREE)
    import json

    status = run_cli("status", "--format", "json", "--migrations", str(tmp_path), url=url)
    assert status.code == 0
    document = json.loads(status.stdout)
    assert [m["state"] for m in document["migrations"]] == ["pending"] * 3
    plan = run_cli("plan", "--format", "json", "--migrations", str(tmp_path), url=url)
    assert plan.code == 0, plan.stderr
    assert json.loads(plan.stdout)["total"] == 3
    dry = run_cli("migrate", "--dry-run", "--migrations", str(tmp_path), url=url)
    assert dry.code == 0
    assert not table_exists(admin, "release_runner.history")
    assert not table_exists(admin, "a")


def test_session_settings_do_not_leak_between_migrations(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A file's SET search_path / set_config(..., false) / SET lock_timeout stays in that file."""
    write(
        tmp_path,
        {
            "0001_settings.sql": "CREATE SCHEMA elsewhere;\nSET search_path TO elsewhere;\n"
            "CREATE TABLE in_elsewhere (id int);\nSET lock_timeout = '1ms';\n"
            "SELECT set_config('statement_timeout', '20ms', false);\n",
            "0002_next.sql": "CREATE TABLE in_public (id int);\nSELECT pg_sleep(0.05);\n",
        },
    )
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 0, result.stdout
    assert table_exists(admin, "elsewhere.in_elsewhere")
    assert table_exists(admin, "public.in_public")


def test_plan_lists_findings_with_table_sizes(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """plan --format json: per migration mode, statements, lock timeout and findings; warnings
    on existing tables carry their estimated rows and size. Dropping a column of an existing
    table refuses the release phase (exit 5) and only warns in the post-deploy phase."""
    import json

    admin.execute(
        "CREATE TABLE big (id int, note text); INSERT INTO big SELECT g, 'x' FROM generate_series(1, 5000) g; ANALYZE big"
    )
    write(
        tmp_path,
        {
            "0001_idx.sql": "-- release-runner: lock-timeout=9s\nCREATE INDEX big_id ON big (id);\nALTER TABLE big DROP COLUMN note;\n",
            "0002_cic.sql": "CREATE INDEX CONCURRENTLY big_note ON big (id);\n",
        },
    )
    release = run_cli("plan", "--format", "json", "--migrations", str(tmp_path), url=url)
    assert release.code == 5, release.stderr
    findings = json.loads(release.stdout)["pending"][0]["findings"]
    assert [(f["rule"], f["severity"]) for f in findings] == [
        ("create-index-not-concurrently", "warning"),
        ("drop-column", "error"),
    ]
    plan = run_cli("plan", "--post-deploy", "--format", "json", "--migrations", str(tmp_path), url=url)
    assert plan.code == 0, plan.stderr
    document = json.loads(plan.stdout)
    assert document["phase"] == "post-deploy"
    first, second = document["pending"]
    assert (first["transaction_mode"], first["statements"], first["lock_timeout_ms"]) == (
        "transaction",
        2,
        9000,
    )
    assert [f["rule"] for f in first["findings"]] == ["create-index-not-concurrently", "drop-column"]
    assert second["transaction_mode"] == "no-transaction" and second["findings"] == []
    assert (document["total"], document["warnings"], document["errors"]) == (2, 2, 0)
    warning = plan.named("preflight.warning")[0]
    assert warning["table"] == "big" and warning["estimated_rows"] == 5000 and warning["size_bytes"] > 0


def test_concurrent_index_beside_other_statements_is_refused(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """Refused before anything runs, naming the fix and the no-transaction directive."""
    write(
        tmp_path, {"0001_mixed.sql": "CREATE TABLE m (id int);\nCREATE INDEX CONCURRENTLY m_id ON m (id);\n"}
    )
    result = run_cli("migrate", "--migrations", str(tmp_path), url=url)
    assert result.code == 5
    assert "0001_mixed.sql:2:1" in result.finished["error"]
    assert "release-runner: no-transaction" in result.finished["error"]
    assert not table_exists(admin, "m")


def test_allowed_warning_passes_and_strict_lint_refuses(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """--strict-lint refuses a warning; the file's allow directive lets it through."""
    admin.execute("CREATE TABLE old (id int, legacy text)")
    write(tmp_path, {"0001_drop.sql": "ALTER TABLE old DROP COLUMN legacy;\n"})
    strict = run_cli("migrate", "--strict-lint", "--migrations", str(tmp_path), url=url)
    assert strict.code == 5 and strict.named("preflight.error")[0]["rule"] == "drop-column"
    write(
        tmp_path,
        {"0001_drop.sql": "-- release-runner: allow drop-column\nALTER TABLE old DROP COLUMN legacy;\n"},
    )
    allowed = run_cli("migrate", "--strict-lint", "--migrations", str(tmp_path), url=url)
    assert allowed.code == 0, allowed.stdout
    assert not allowed.named("preflight.warning")


def test_custom_history_schema(tmp_path: Path, url: str, admin: psycopg.Connection[Any]) -> None:
    """--history-schema with capitals: created, found again on the next run, lock key its own."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a ();\n"})
    for _ in range(2):
        result = run_cli(
            "migrate", "--migrations", str(tmp_path), "--history-schema", "Deploy_History", url=url
        )
        assert result.code == 0, result.stdout
    assert admin.execute('SELECT version FROM "Deploy_History".history').fetchall() == [("0001",)]
    assert not table_exists(admin, "release_runner.history")


def test_an_applied_file_edited_on_purpose_is_accepted_after_verification(
    tmp_path: Path, server: Server, url: str, admin: psycopg.Connection[Any]
) -> None:
    """An applied file edited on purpose: migrate refuses (CHANGED); `repair --accept-checksum`
    records the new text only while the schema matches the snapshot (exit 3 and nothing
    recorded otherwise); migrate is then green."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a (id int);\n"})
    scratch = server.url("postgres")
    assert run_cli("snapshot", "--migrations", str(tmp_path), "--scratch-url", scratch).code == 0
    assert run_cli("migrate", "--migrations", str(tmp_path), url=url).code == 0
    (tmp_path / "0001_a.sql").write_text("-- the table of a\nCREATE TABLE a (id int);\n")
    assert run_cli("migrate", "--migrations", str(tmp_path), url=url).code == 5
    admin.execute("ALTER TABLE a ALTER id TYPE bigint")  # changed by hand: a failing difference
    drifted = run_cli(
        "repair", "--accept-checksum", "0001", "--reason", "comment", "--migrations", str(tmp_path), url=url
    )
    assert drifted.code == 3, drifted.stdout
    assert run_cli("migrate", "--migrations", str(tmp_path), url=url).code == 5
    admin.execute("ALTER TABLE a ALTER id TYPE int")
    accepted = run_cli(
        "repair", "--accept-checksum", "0001", "--reason", "comment", "--migrations", str(tmp_path), url=url
    )
    assert accepted.code == 0, accepted.stdout
    assert accepted.named("history.repaired")[0]["action"] == "accept-checksum"
    assert run_cli("migrate", "--migrations", str(tmp_path), url=url).code == 0
