"""core/targets.py: the targets file, query rows, shards, and the fleet's exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from release_runner.core.errors import UsageError
from release_runner.core.targets import (
    Target,
    TargetKind,
    fleet_exit_code,
    from_rows,
    in_shard,
    parse_shard,
    read_targets_file,
)


def test_a_targets_file_reads_names_and_urls_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "targets"
    path.write_text("# tenants\n\nacme postgresql://a/acme\nbeta $BETA_URL\ngamma ${GAMMA_URL}\n")
    env = {"BETA_URL": "postgresql://b/beta", "GAMMA_URL": "postgresql://g/gamma"}
    assert [(t.name, t.kind, t.where) for t in read_targets_file(path, env)] == [
        ("acme", TargetKind.URL, "postgresql://a/acme"),
        ("beta", TargetKind.URL, "postgresql://b/beta"),
        ("gamma", TargetKind.URL, "postgresql://g/gamma"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("acme postgresql://a\nacme postgresql://b\n", "named twice"),
        ("acme $MISSING\n", ":1: \\$MISSING is not set"),
        ("ok postgresql://a\nonly-a-name\n", ":2: expected `NAME URL`"),
        ("bad/name postgresql://a\n", ":1: expected `NAME URL`"),
    ],
)
def test_a_bad_line_is_a_usage_error_naming_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "targets"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        read_targets_file(path, {})


def test_query_rows_name_a_url_a_database_or_a_schema() -> None:
    rows: list[dict[str, object]] = [
        {"name": "a", "url": "postgresql://x/a", "database": None, "schema": None},
        {"name": "b", "database": "tenant_b"},
        {"name": "c", "schema": "tenant_c"},
    ]
    assert [(t.name, t.kind) for t in from_rows(rows)] == [
        ("a", TargetKind.URL),
        ("b", TargetKind.DATABASE),
        ("c", TargetKind.SCHEMA),
    ]
    with pytest.raises(UsageError, match="exactly one of"):
        from_rows([{"name": "d", "database": "x", "schema": "y"}])


def test_shards_split_the_fleet_stably_and_completely() -> None:
    """Every target is in exactly one shard, and the split does not depend on the process."""
    names = [f"tenant_{i}" for i in range(200)]
    shards = [{n for n in names if in_shard(n, (i, 4))} for i in range(1, 5)]
    assert set().union(*shards) == set(names) and sum(len(s) for s in shards) == len(names)
    assert all(len(s) > 20 for s in shards)
    assert in_shard("tenant_7", (3, 4)) == in_shard("tenant_7", (3, 4))
    assert parse_shard("2/3", {}) == (2, 3)
    assert parse_shard("auto/3", {"JOB_COMPLETION_INDEX": "0"}) == (1, 3)
    for bad in ("0/3", "4/3", "x/3", "auto/3"):
        with pytest.raises(UsageError):
            parse_shard(bad, {})


@pytest.mark.parametrize(
    ("codes", "code"),
    [([0, 0], 0), ([2, 4, 5], 5), ([5, 3], 3), ([3, 1, 4], 1), ([1, 143, 2], 143), ([130, 143], 130)],
)
def test_the_fleet_exit_code_is_the_most_serious(codes: list[int], code: int) -> None:
    """Order: 130/143, then 1, 3, 5, 4, 2."""
    assert fleet_exit_code(codes) == code


def test_a_target_never_prints_its_url() -> None:
    assert "secret" not in repr(Target("a", TargetKind.URL, "postgresql://u:secret@h/db"))
