"""core/objects.py and core/schema.py: a catalog read becomes a deterministic value; the
snapshot file round-trips and refuses what it cannot read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from release_runner.core import schema
from release_runner.core.errors import UsageError
from release_runner.core.objects import RUNNER, objects_from_catalog, without_tables

EMPTY: dict[str, Any] = {
    key: []
    for key in [
        "schemas",
        "tables",
        "sequence_columns",
        "constraints",
        "indexes",
        "enums",
        "sequences",
        "views",
        "functions",
        "triggers",
        "extensions",
        "domains",
        "composites",
        "rules",
        "privileges",
        "policies",
        "statistics",
        "default_privileges",
    ]
}


def _raw(**sections: Any) -> dict[str, Any]:
    return {**EMPTY, "columns": [None] * 11, "runner": "deployer", **sections}


def test_tables_columns_and_identity() -> None:
    raw = _raw(
        schemas=["public"],
        tables=[("public", "t", "r", False, False, "p", "d", None, None, None)],
        columns=[
            ["public"],
            ["t"],
            ["id"],
            ["bigint"],
            [True],
            [None],
            ["a"],
            [None],
            [None],
            [None],
            [None],
        ],
        sequence_columns=[("i", "public", "t_id_seq", "public", "t", "id", 1, 1, 1, 9, False)],
    )
    objects = objects_from_catalog(raw)
    assert objects["table"] == {"public.t": {"kind": "table"}}
    column = objects["column"]["public.t.id"]
    assert column["identity"] == "always" and column["nullable"] is False
    assert column["identity_options"]["max"] == 9


def test_the_runner_role_reads_the_same_everywhere() -> None:
    """The role that ran the migrations is (runner) in owners and ACLs, so a replay by another
    role compares equal."""
    raw = _raw(
        schemas=["public"],
        tables=[("public", "t", "r", False, False, "p", "d", None, None, None)],
        privileges=[("table", "public.t", "deployer", ["deployer=arwd/deployer", "app=r/deployer"])],
    )
    table = objects_from_catalog(raw)["table"]["public.t"]
    assert table["owner"] == RUNNER
    assert table["acl"] == [f"{RUNNER}=arwd/{RUNNER}", f"app=r/{RUNNER}"]
    assert "owner" not in schema.without_privileges(objects_from_catalog(raw))["table"]["public.t"]


ACL = ["app=r/deployer"]


def test_column_grants_default_privileges_type_acls_statistics_and_storage() -> None:
    """What decides who reads what (a column-level GRANT, ALTER DEFAULT PRIVILEGES, a type's
    USAGE) is compared, with the runner's role as (runner); --ignore-privileges leaves all of it
    out; statistics objects and a column's SET STORAGE are compared too."""
    raw = _raw(
        schemas=["public"],
        enums=[("public", "mood", ["ok"])],
        columns=[
            ["public"],
            ["t"],
            ["secret"],
            ["text"],
            [False],
            [None],
            [""],
            [None],
            [None],
            ["m"],
            [ACL],
        ],
        privileges=[("enum", "public.mood", "deployer", ["deployer=U/deployer"])],
        default_privileges=[("deployer", "public", "r", ["app=r/deployer"])],
        statistics=[("public", "t", "t_ab", "CREATE STATISTICS public.t_ab ON a, b FROM public.t")],
    )
    objects = objects_from_catalog(raw)
    assert objects["column"]["public.t.secret"] == {
        "type": "text",
        "nullable": True,
        "storage": "main",
        "acl": [f"app=r/{RUNNER}"],
    }
    assert objects["enum"]["public.mood"]["acl"] == [f"{RUNNER}=U/{RUNNER}"]
    assert objects["default privileges"] == {f"{RUNNER} in public on tables": {"acl": [f"app=r/{RUNNER}"]}}
    assert objects["statistics"]["public.t.t_ab"]["definition"].startswith("CREATE STATISTICS")
    bare = schema.without_privileges(objects)
    assert "default privileges" not in bare and "acl" not in bare["column"]["public.t.secret"]


def test_an_index_is_compared_by_what_it_does_not_its_name() -> None:
    raw = _raw(
        indexes=[
            (
                "public",
                "t",
                "t_a_idx",
                "t_a_idx",
                "CREATE INDEX t_a_idx ON public.t USING btree (a)",
                False,
                True,
            )
        ]
    )
    index = objects_from_catalog(raw)["index"]["public.t_a_idx"]
    assert index["definition"] == "CREATE INDEX ON public.t USING btree (a)"


def test_the_snapshot_file_round_trips(tmp_path: Path) -> None:
    snapshot = schema.Snapshot({"table": {"public.t": {"kind": "table"}}}, 15)
    path = tmp_path / "schema.snapshot.json"
    path.write_text(schema.dump(snapshot))
    loaded = schema.load(path)
    assert loaded is not None and loaded.objects == snapshot.objects and loaded.server_major == 15
    assert schema.dump(loaded) == path.read_text()
    assert schema.load(tmp_path / "absent.json") is None


@pytest.mark.parametrize(
    "text", ["{", '{"format": "other"}', '{"format": "release-runner/schema-snapshot", "format_version": 1}']
)
def test_an_unreadable_snapshot_says_to_regenerate_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "schema.snapshot.json"
    path.write_text(text)
    with pytest.raises(UsageError, match="regenerate"):
        schema.load(path)


def test_a_foreign_history_table_and_what_belongs_to_it_are_left_out() -> None:
    """The table, its columns, constraints, indexes and owned sequences, and a schema it leaves
    empty; nothing else."""
    objects: dict[str, dict[str, dict[str, Any]]] = {
        "schema": {"public": {}, "drizzle": {}},
        "table": {"drizzle.m": {}, "public.t": {}},
        "column": {"drizzle.m.id": {}, "public.t.id": {}},
        "constraint": {"drizzle.m.m_pkey": {"table": "drizzle.m"}},
        "index": {"drizzle.m_pkey": {"table": "drizzle.m"}, "public.t_pkey": {"table": "public.t"}},
        "sequence": {"drizzle.m_id_seq": {"owned_by": "drizzle.m.id"}},
    }
    kept = without_tables(objects, {"drizzle.m"})
    assert kept == {
        "schema": {"public": {}},
        "table": {"public.t": {}},
        "column": {"public.t.id": {}},
        "constraint": {},
        "index": {"public.t_pkey": {"table": "public.t"}},
        "sequence": {},
    }
