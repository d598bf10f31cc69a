"""core/detect.py: one walker finds every rule's statements, with the object they act on; what
the batch created is new; safe widenings are told from breaking type changes."""

from __future__ import annotations

import pytest

from release_runner.core import detect, net_effect
from tests.conftest import migration_value


def _hits(sql: str, created: set[tuple[str, str]] | None = None) -> list[tuple[str, str | None, str | None]]:
    statements = migration_value("0001", sql).statements
    found = net_effect.file_hits(statements, created if created is not None else set())
    return [(j.hit.rule, j.hit.name, j.hit.column) for j in found]


@pytest.mark.parametrize(
    ("sql", "hits"),
    [
        (
            "ALTER TABLE t DROP COLUMN a, DROP COLUMN b;",
            [("drop-column", "t", "a"), ("drop-column", "t", "b")],
        ),
        ("ALTER TABLE t ALTER COLUMN a SET NOT NULL;", [("set-not-null", "t", "a")]),
        ("ALTER TABLE t ALTER COLUMN a DROP DEFAULT;", [("drop-default", "t", "a")]),
        ("ALTER TABLE t ADD COLUMN c int NOT NULL;", [("add-column-not-null-without-default", "t", "c")]),
        ("ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 0;", []),
        (
            "ALTER TABLE t ADD COLUMN c uuid DEFAULT gen_random_uuid();",
            [("volatile-default-rewrite", "t", "c")],
        ),
        ("ALTER TABLE t ADD FOREIGN KEY (a) REFERENCES u (id);", [("add-foreign-key-validated", "t", None)]),
        ("ALTER TABLE t ADD FOREIGN KEY (a) REFERENCES u (id) NOT VALID;", []),
        ("ALTER TABLE t ADD UNIQUE (a);", [("add-unique-constraint", "t", None)]),
        ("CREATE INDEX i ON s.t (a);", [("create-index-not-concurrently", "s.t", None)]),
        ("CREATE INDEX CONCURRENTLY i ON t (a);", []),
        ("DROP TABLE a, s.b;", [("drop-table", "a", None), ("drop-table", "s.b", None)]),
        ("DROP VIEW v;", [("drop-view", "v", None)]),
        ("TRUNCATE a, b;", [("truncate", "a", None), ("truncate", "b", None)]),
        ("ALTER TABLE t RENAME TO u;", [("rename-table", "t", None)]),
        ("ALTER TABLE t RENAME COLUMN a TO b;", [("rename-column", "t", "a")]),
        ("ALTER TYPE mood RENAME VALUE 'a' TO 'b';", [("rename-enum-value", "mood", None)]),
        ("DROP SCHEMA s CASCADE;", [("drop-schema", "s", None)]),
        ("ALTER TABLE t SET SCHEMA s;", [("set-schema", "t", None)]),
        ("SELECT 1;", []),
    ],
)
def test_each_rule_names_its_object(sql: str, hits: list[tuple[str, str | None, str | None]]) -> None:
    """Every rule the walker knows names the object (and the column) it acts on."""
    assert _hits(sql) == hits


def test_what_the_batch_created_is_new() -> None:
    """Hits on what this file or an earlier one of the batch created are dropped; the set of
    created objects grows with each file."""
    created: set[tuple[str, str]] = set()
    assert (
        _hits("CREATE TABLE t (a int);\nALTER TABLE t DROP COLUMN a;\nCREATE VIEW v AS SELECT 1;", created)
        == []
    )
    assert created == {(detect.RELATION, "t"), (detect.RELATION, "v")}
    assert _hits("DROP VIEW v;\nDROP TABLE old;", created) == [("drop-table", "old", None)]


@pytest.mark.parametrize(
    ("old", "new", "safe"),
    [
        (("varchar", 14), ("varchar", 24), True),
        (("varchar", 24), ("varchar", 14), False),
        (("varchar", 14), ("text", -1), True),
        (("int2", -1), ("int4", -1), True),
        (("int4", -1), ("int8", -1), False),
        (("numeric", (10 << 16 | 2) + 4), ("numeric", (12 << 16 | 2) + 4), True),
        (("numeric", (10 << 16 | 2) + 4), ("numeric", (12 << 16 | 3) + 4), False),
    ],
)
def test_safe_widenings(old: detect.ColumnType, new: detect.ColumnType, safe: bool) -> None:
    """Only a type every old value reads back from unchanged is a widening."""
    assert detect.safe_widening(old, new) is safe


def test_breaks_needs_the_object_to_exist_and_a_real_type_change() -> None:
    """A hit breaks the running release only on an existing object; a type change only when
    it is not a safe widening (or when a USING clause makes it a conversion)."""
    (widen,) = [
        j.hit
        for j in net_effect.file_hits(
            migration_value("1", "ALTER TABLE t ALTER a TYPE varchar(40);").statements, set()
        )
    ]
    (using,) = [
        j.hit
        for j in net_effect.file_hits(
            migration_value("1", "ALTER TABLE t ALTER a TYPE int USING a::int;").statements, set()
        )
    ]
    existing = {(detect.RELATION, "t")}

    def breaks(hit: detect.Hit, existing: set[tuple[str, str]], old: detect.ColumnType | None) -> bool:
        columns: dict[str, dict[str, detect.Column]] = {"t": {"a": detect.Column(old)}} if old else {}
        return detect.verdict(hit, detect.Before(existing, columns)) is not None

    assert not breaks(widen, set(), None)
    assert not breaks(widen, existing, ("varchar", 24))
    assert breaks(widen, existing, ("text", -1))
    assert breaks(using, existing, ("varchar", 24))
