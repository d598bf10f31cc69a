"""Deploy phases on a real PostgreSQL: the release-phase compatibility rules, post-deploy
migrations deferred and applied later (by another release or by --post-deploy), and
verification exact in both phases."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import ROOT, Run, Server, cli_env, run_cli, write

TABLE = "CREATE TABLE t (id int PRIMARY KEY, a varchar(20) DEFAULT 'x', b int, c numeric(10,2));\n"
OTHERS = (
    "CREATE TABLE vsrc (id int);\nCREATE VIEW tv AS SELECT id FROM vsrc;\nCREATE SCHEMA ts;\n"
    "CREATE TYPE tmood AS ENUM ('a');\n"
)
# rule -> (a statement that breaks code already running against the objects above, its object)
NOT_TABLES = {
    "drop-view": ("DROP VIEW tv", "tv"),
    "rename-view": ("ALTER VIEW tv RENAME TO tv2", "tv"),
    "set-schema": ("ALTER TABLE vsrc SET SCHEMA ts", "vsrc"),
    "drop-schema": ("DROP SCHEMA ts", "ts"),
    "rename-schema": ("ALTER SCHEMA ts RENAME TO ts2", "ts"),
    "drop-type": ("DROP TYPE tmood", "tmood"),
    "rename-type": ("ALTER TYPE tmood RENAME TO tfeel", "tmood"),
    "rename-enum-value": ("ALTER TYPE tmood RENAME VALUE 'a' TO 'b'", "tmood"),
}
# rule -> a statement that breaks code already running against t
BREAKING = {
    "drop-table": "DROP TABLE t",
    "drop-column": "ALTER TABLE t DROP COLUMN b",
    "rename-table": "ALTER TABLE t RENAME TO u",
    "rename-column": "ALTER TABLE t RENAME COLUMN b TO bb",
    "change-column-type": "ALTER TABLE t ALTER COLUMN b TYPE smallint",
    "set-not-null": "ALTER TABLE t ALTER COLUMN b SET NOT NULL",
    "add-column-not-null-without-default": "ALTER TABLE t ADD COLUMN d int NOT NULL",
    "drop-default": "ALTER TABLE t ALTER COLUMN a DROP DEFAULT",
}


def _migrate(directory: Path, url: str, *args: str, release: str | None = None) -> Run:
    extra = {"FLY_IMAGE_REF": release} if release else {}
    return run_cli("migrate", "--migrations", str(directory), *args, env=cli_env(url, **extra))


def _columns(admin: psycopg.Connection[Any], table: str) -> list[str]:
    rows = admin.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0"
        " AND NOT attisdropped ORDER BY attnum",
        (table,),
    ).fetchall()
    return [row[0] for row in rows]


@pytest.mark.parametrize("rule", [*BREAKING, *NOT_TABLES])
def test_breaking_statement_on_an_existing_object_is_refused(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any], rule: str
) -> None:
    """Refused in the release phase with the rule and the fix, nothing applied; accepted with
    `allow RULE` above it, and deferred, not refused, in a post-deploy file."""
    statement, name = NOT_TABLES.get(rule) or (BREAKING[rule], "t")
    base = {"0001_t.sql": TABLE + OTHERS}
    assert _migrate(write(tmp_path / "base", base), url, "--no-verify").code == 0
    write(
        tmp_path / "plain",
        {**base, "0002_ok.sql": "CREATE TABLE other (id int);\n", "0003_x.sql": f"{statement};\n"},
    )
    refused = _migrate(tmp_path / "plain", url, "--no-verify")
    assert refused.code == 5, refused.stdout
    errors = refused.named("preflight.error")
    assert [(e["rule"], e["line"], e["table"]) for e in errors] == [(rule, 1, name)]
    assert "post-deploy" in errors[0]["fix"] or "DEFAULT" in errors[0]["fix"]
    assert f"allow {rule}" in errors[0]["fix"]
    assert _columns(admin, "other") == [] and _columns(admin, "t") == ["id", "a", "b", "c"]

    write(tmp_path / "post", {**base, "0002_x.sql": f"-- release-runner: post-deploy\n{statement};\n"})
    deferred = _migrate(tmp_path / "post", url, "--no-verify", release="img:1")
    assert deferred.code == 0, deferred.stdout
    assert [e["version"] for e in deferred.named("migration.deferred")] == ["0002"]
    assert deferred.finished["deferred"] == 1 and deferred.finished["applied"] == 0

    # The directive traded for an allow: applied now, and no longer deferred.
    write(tmp_path / "allowed", {**base, "0002_x.sql": f"-- release-runner: allow {rule}\n{statement};\n"})
    allowed = _migrate(tmp_path / "allowed", url, "--no-verify", release="img:1")
    assert allowed.code == 0, allowed.stdout
    assert allowed.finished["applied"] == 1 and allowed.finished["deferred"] == 0
    assert admin.execute("SELECT count(*) FROM release_runner.deferred").fetchone() == (0,)


def test_safe_changes_and_tables_of_the_same_run_pass(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """Widenings pass on an existing table; every breaking statement passes on a table created
    earlier in the same run, which no running code uses."""
    write(
        tmp_path / "widen",
        {
            "0000_t.sql": TABLE,
            "0001_widen.sql": "ALTER TABLE t ALTER a TYPE varchar(64);\nALTER TABLE t ALTER c TYPE numeric(12,2);\n",
            "0002_widen.sql": "ALTER TABLE t ALTER a TYPE text;\nALTER TABLE t ADD e int NOT NULL DEFAULT 0;\n",
        },
    )
    assert _migrate(write(tmp_path / "base", {"0000_t.sql": TABLE}), url, "--no-verify").code == 0
    widened = _migrate(tmp_path / "widen", url, "--no-verify")
    assert widened.code == 0, widened.stdout
    assert not widened.named("preflight.error")

    # Each statement on a table of its own, all created by the run's first file.
    fresh = {"0003_new.sql": "".join(TABLE.replace(" t ", f" n{i} ") for i in range(len(BREAKING)))}
    for i, statement in enumerate(BREAKING.values()):
        fresh[f"{i + 4:04d}_x.sql"] = statement.replace("TABLE t", f"TABLE n{i}") + ";\n"
    # The other kinds, created by the run's first file and changed by a later one.
    fresh["0003_new.sql"] += (
        OTHERS.replace("vsrc", "nsrc").replace("tv ", "nv ").replace("ts", "ns").replace("tmood", "nmood")
    )
    fresh["0050_others.sql"] = (
        "ALTER TYPE nmood RENAME VALUE 'a' TO 'b';\nALTER TYPE nmood RENAME TO nfeel;\nDROP TYPE nfeel;\n"
        "ALTER VIEW nv RENAME TO nv2;\nDROP VIEW nv2;\nALTER TABLE nsrc SET SCHEMA ns;\n"
        "ALTER SCHEMA ns RENAME TO ns2;\nDROP SCHEMA ns2 CASCADE;\n"
    )
    write(tmp_path / "widen", fresh)
    created = _migrate(tmp_path / "widen", url, "--no-verify")
    assert created.code == 0, created.stdout
    assert not created.named("preflight.error")


def _readme_files() -> dict[str, str]:
    """The README's worked example, file by file (each snippet names its file first)."""
    snippets = re.findall(r"^```sql\n-- sql/(\S+)\n(.*?)^```$", (ROOT / "README.md").read_text(), re.M | re.S)
    assert len(snippets) == 4, "the README's rename example changed; update this test"
    return {name: f"-- sql/{name}\n{body}" for name, body in snippets}


EXAMPLE = _readme_files()
RELEASE_1, RELEASE_2, RELEASE_3 = (dict(list(EXAMPLE.items())[:count]) for count in (1, 2, 4))


def _release(directory: Path, files: dict[str, str], server: Server) -> Path:
    """The release's files and their snapshot, as CI would produce and commit them."""
    write(directory, files)
    snapshot = run_cli("snapshot", "--migrations", str(directory), "--scratch-url", server.url("postgres"))
    assert snapshot.code == 0, snapshot.stdout
    return directory


def _status(directory: Path, url: str) -> dict[str, str]:
    result = run_cli("status", "--migrations", str(directory), "--format", "json", url=url)
    assert result.code == 0, result.stdout + result.stderr
    return {m["version"]: m["state"] for m in json.loads(result.stdout)["migrations"]}


def test_rename_in_three_releases(
    tmp_path: Path, server: Server, url: str, admin: psycopg.Connection[Any]
) -> None:
    """The README's example. Release 3 backfills `name` and defers dropping `fullname`:
    release 2's queries keep working, verify passes against the schema as it must be now, check
    verifies both states, and real drift is caught. A retry of release 3 keeps deferring;
    release 4 applies the drop, and verify holds the full snapshot, drift included."""
    assert _migrate(_release(tmp_path / "r1", RELEASE_1, server), url, release="img:1").code == 0
    admin.execute("INSERT INTO users VALUES (1, 'Ada')")
    assert _migrate(_release(tmp_path / "r2", RELEASE_2, server), url, release="img:2").code == 0
    r3 = _release(tmp_path / "r3", RELEASE_3, server)
    plan = run_cli(
        "plan", "--migrations", str(r3), "--format", "json", env=cli_env(url, FLY_IMAGE_REF="img:3")
    )
    assert plan.code == 0, plan.stderr
    document = json.loads(plan.stdout)
    assert [m["version"] for m in document["pending"]] == ["0003"]
    assert [m["version"] for m in document["deferred"]] == ["0004"]
    assert plan.named("release.finished")[0]["deferred"] == 1
    third = _migrate(r3, url, release="img:3")
    assert third.code == 0, third.stdout
    assert [e["version"] for e in third.named("migration.applied")] == ["0003"]
    [deferred] = third.named("migration.deferred")
    assert (deferred["version"], deferred["release_id"]) == ("0004", "img:3")
    assert (third.finished["applied"], third.finished["deferred"]) == (1, 1)
    assert third.named("verify.passed")
    # Release 2's Machines, still serving: they read fullname and write both columns.
    admin.execute("INSERT INTO users (id, fullname, name) VALUES (2, 'Grace', 'Grace')")
    assert admin.execute("SELECT fullname FROM users ORDER BY id").fetchall() == [("Ada",), ("Grace",)]
    admin.execute("INSERT INTO users (id, name) VALUES (3, 'Linus')")  # release 3's own write
    assert _status(r3, url) == {"0001": "applied", "0002": "applied", "0003": "applied", "0004": "deferred"}
    check = run_cli("check", "--migrations", str(r3), "--scratch-url", server.url("postgres"))
    assert check.code == 0, check.stdout

    retry = _migrate(r3, url, release="img:3")
    assert retry.code == 0 and retry.finished["deferred"] == 1 and retry.finished["applied"] == 0

    admin.execute("ALTER TABLE users DROP COLUMN name")  # drift while 0004 waits
    drift = run_cli("verify", "--migrations", str(r3), url=url)
    assert drift.code == 3, drift.stdout
    assert [m["name"] for m in drift.named("verify.mismatch") if m["level"] == "error"] == [
        "public.users.name"
    ]
    admin.execute(
        "ALTER TABLE users ADD COLUMN name text; UPDATE users SET name = coalesce(fullname, 'Linus')"
    )

    fourth = _migrate(r3, url, release="img:4")
    assert fourth.code == 0, fourth.stdout
    assert [e["version"] for e in fourth.named("migration.applied")] == ["0004"]
    assert "img:3" in fourth.named("migration.released")[0]["reason"]
    assert _columns(admin, "users") == ["id", "name"]
    assert _status(r3, url) == {v: "applied" for v in ("0001", "0002", "0003", "0004")}

    admin.execute("ALTER TABLE users ALTER name DROP NOT NULL")  # drift after the contract
    assert run_cli("verify", "--migrations", str(r3), url=url).code == 3


def test_post_deploy_phase_and_runs_without_a_release_id(
    tmp_path: Path, server: Server, url: str, admin: psycopg.Connection[Any]
) -> None:
    """Without a release id a deferral waits for --post-deploy, whatever release comes next;
    --post-deploy applies it and verify holds the full snapshot."""
    assert _migrate(_release(tmp_path / "r1", RELEASE_2, server), url).code == 0
    r2 = _release(tmp_path / "r2", RELEASE_3, server)
    assert _migrate(r2, url).named("migration.deferred")[0]["release_id"] is None
    later = _migrate(r2, url, release="img:9")
    assert later.code == 0 and later.finished["deferred"] == 1, later.stdout
    post = _migrate(r2, url, "--post-deploy")
    assert post.code == 0, post.stdout
    assert [e["version"] for e in post.named("migration.applied")] == ["0004"]
    assert post.named("verify.passed")
    assert _columns(admin, "users") == ["id", "name"]
    order = admin.execute("SELECT version FROM release_runner.history ORDER BY applied_at").fetchall()
    assert [row[0] for row in order] == ["0001", "0002", "0003", "0004"]


def test_new_database_applies_everything(tmp_path: Path, server: Server, url: str) -> None:
    """No history: no release runs against this schema, so post-deploy files apply in order."""
    result = _migrate(_release(tmp_path, RELEASE_3, server), url, release="img:1")
    assert result.code == 0, result.stdout
    assert result.finished["applied"] == 4 and result.finished["deferred"] == 0
    assert "no migration history" in result.named("migration.released")[0]["reason"]


def test_snapshot_must_know_the_deferred_state(
    tmp_path: Path, server: Server, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A snapshot taken before a file became post-deploy cannot say what the schema is while it
    waits: migrate refuses before changing anything (exit 2), and check calls it stale."""
    assert _migrate(_release(tmp_path, RELEASE_2, server), url).code == 0
    directive = "-- release-runner: post-deploy\n"
    _release(tmp_path, {name: text.replace(directive, "") for name, text in RELEASE_3.items()}, server)
    write(tmp_path, RELEASE_3)  # the directive added, the snapshot not regenerated
    refused = _migrate(tmp_path, url, release="img:2")
    assert refused.code == 2, refused.stdout
    assert "0004" in refused.finished["error"]
    assert _columns(admin, "users") == ["id", "fullname", "name"]
    stale = run_cli("check", "--migrations", str(tmp_path), "--scratch-url", server.url("postgres"))
    assert stale.code == 3, stale.stdout


NET_BASE = (
    "CREATE TYPE \"State\" AS ENUM ('draft', 'sent', 'void');\n"
    'CREATE TABLE "Doc" (id int, "state" "State" DEFAULT \'draft\', n int DEFAULT 0, m int, k int, q int NOT NULL);\n'
    'CREATE TABLE plain (id int, v text);\nCREATE VIEW docs AS SELECT id FROM "Doc";\n'
)
ENUM_SWAP = (
    'BEGIN;\nCREATE TYPE "State_new" AS ENUM ({labels});\n'
    'ALTER TABLE "Doc" ALTER COLUMN "state" DROP DEFAULT;\n'
    'ALTER TABLE "Doc" ALTER COLUMN "state" TYPE "State_new" USING ("state"::text::"State_new");\n'
    'ALTER TYPE "State" RENAME TO "State_old";\nALTER TYPE "State_new" RENAME TO "State";\n'
    'DROP TYPE "State_old";\nALTER TABLE "Doc" ALTER COLUMN "state" SET DEFAULT \'draft\';\nCOMMIT;\n'
)


def test_a_file_is_judged_by_its_net_effect(tmp_path: Path, url: str, admin: psycopg.Connection[Any]) -> None:
    """What a file undoes before it commits breaks nothing (a default dropped and set again, a
    view or a table with the same columns created again, a column added and dropped, Prisma's
    enum swap that keeps every label, SET NOT NULL on a column with a default); what it leaves
    broken is refused once per object: the enum's removed label, the table's missing column,
    each column of one ALTER."""
    base = {"0001_base/migration.sql": NET_BASE}
    assert _migrate(write(tmp_path / "base", base), url, "--no-verify").code == 0
    undone = {
        **base,
        "0002_swap/migration.sql": ENUM_SWAP.format(labels="'draft', 'sent', 'void', 'held'"),
        "0003_undone/migration.sql": (
            'ALTER TABLE "Doc" ALTER COLUMN n DROP DEFAULT;\nALTER TABLE "Doc" ALTER COLUMN n SET DEFAULT 1;\n'
            'ALTER TABLE "Doc" ALTER COLUMN n SET NOT NULL;\n'
            'ALTER TABLE "Doc" ALTER COLUMN q DROP NOT NULL;\nALTER TABLE "Doc" ALTER COLUMN q SET NOT NULL;\n'
            'DROP VIEW docs;\nCREATE VIEW docs AS SELECT id, n FROM "Doc";\n'
            'ALTER TABLE "Doc" ADD COLUMN tmp int;\nALTER TABLE "Doc" DROP COLUMN tmp;\n'
            "DROP TABLE plain;\nCREATE TABLE plain (id bigint, v text, w int);\n"
        ),
    }
    passed = _migrate(write(tmp_path / "undone", undone), url, "--no-verify", release="img:2")
    assert passed.code == 0, passed.stdout
    assert not passed.named("preflight.error") and passed.finished["applied"] == 2
    # NOT NULL dropped and set again: no drop-not-null warning
    assert "drop-not-null" not in {w["rule"] for w in passed.named("preflight.warning")}
    assert admin.execute('SELECT enum_range(NULL::"State")::text').fetchone() == ("{draft,sent,void,held}",)

    broken = {
        **undone,
        "0004_swap/migration.sql": ENUM_SWAP.format(labels="'draft', 'sent'"),
        "0005_broken/migration.sql": (
            "DROP TABLE plain;\nCREATE TABLE plain (id int, v text);\n"
            'ALTER TABLE "Doc" DROP COLUMN m, DROP COLUMN k;\n'
            'DROP VIEW docs;\nCREATE VIEW docs AS SELECT n FROM "Doc";\n'
        ),
    }
    refused = _migrate(write(tmp_path / "broken", broken), url, "--no-verify", release="img:3")
    assert refused.code == 5, refused.stdout
    errors = {(e["rule"], e["object"], e["line"]): e["message"] for e in refused.named("preflight.error")}
    assert set(errors) == {
        ("remove-enum-value", "State", 6),
        ("drop-table", "plain", 1),
        ("drop-column", "Doc.m", 3),
        ("drop-column", "Doc.k", 3),
        ("drop-view", "docs", 4),
    }
    assert "labels removed: void, held" in errors["remove-enum-value", "State", 6]
    assert "without column(s) w" in errors["drop-table", "plain", 1]
    assert "without column(s) id" in errors["drop-view", "docs", 4]
    assert _columns(admin, '"Doc"') == ["id", "state", "n", "m", "k", "q"]
    assert admin.execute('SELECT enum_range(NULL::"State")::text').fetchone() == ("{draft,sent,void,held}",)
