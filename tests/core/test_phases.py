"""core/phases.py: which pending migrations the release phase applies and which it defers; the
schema expected meanwhile."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from release_runner.core import phases
from release_runner.core.errors import UsageError
from release_runner.core.history import DeferredRow, HistoryRow, Mode, Status
from release_runner.core.migrations import Directives, Migration, SourceFormat
from release_runner.core.plan import make_plan
from release_runner.core.schema import Snapshot
from tests.conftest import migration_value


def _post_deploy(version: str) -> Migration:
    plain = migration_value(version, "ALTER TABLE t DROP COLUMN old;")
    return Migration(
        plain.version,
        plain.name,
        plain.path,
        plain.text,
        plain.raw_sha256,
        Directives(post_deploy=True),
        SourceFormat.NATIVE,
    )


def _applied(migration: Migration) -> HistoryRow:
    return HistoryRow(
        migration.version,
        migration.name,
        migration.checksum,
        Mode.TRANSACTION,
        Status.APPLIED,
        datetime.now(UTC),
        1,
        "me",
        "run",
        None,
    )


def test_the_release_phase_defers_post_deploy_files_until_another_release() -> None:
    """A post-deploy file waits in the release that brings it, and is applied by the release
    phase of a later release or by --post-deploy; pre-deploy files always apply."""
    first, pre, post = migration_value("0001"), migration_value("0002"), _post_deploy("0003")
    plan = make_plan([first, pre, post], [_applied(first)], None, {})
    now = phases.choose(plan, post_deploy=False, release_id="r1")
    assert ([m.version for m in now.apply], [m.version for m in now.defer]) == (["0002"], ["0003"])
    deferred = {"0003": DeferredRow("0003", post.name, "r1", datetime.now(UTC), "run")}
    plan = make_plan([first, pre, post], [_applied(first), _applied(pre)], None, deferred)
    assert [m.version for m in phases.choose(plan, False, "r1").defer] == ["0003"]
    later = phases.choose(plan, False, "r2")
    assert [m.version for m in later.apply] == ["0003"] and "0003" in later.released
    assert [m.version for m in phases.choose(plan, True, None).apply] == ["0003"]


def test_a_fresh_database_gets_everything() -> None:
    """No history at all: nothing is running against it, so post-deploy files apply too."""
    plan = make_plan([migration_value("0001"), _post_deploy("0002")], [], None, {})
    assert [m.version for m in phases.choose(plan, False, "r1").apply] == ["0001", "0002"]


def test_delta_and_undone_are_inverse() -> None:
    """What a migration changed, undone, gives back the schema before it."""
    before = {"column": {"t.a": {"type": "int"}, "t.old": {"type": "text"}}}
    after = {"column": {"t.a": {"type": "bigint"}, "t.new": {"type": "text"}}}
    change = phases.delta(before, after)
    assert phases.undone(after, [change]) == before


def test_a_snapshot_without_the_deferred_state_is_refused() -> None:
    snapshot = Snapshot({"table": {}}, 15, {})
    with pytest.raises(UsageError, match="0003"):
        phases.expected_with_deferred(snapshot, ["0003"], "sql/schema.snapshot.json")
