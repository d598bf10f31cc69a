"""core/net_effect.py: a file is judged by what it leaves, not statement by statement: what it
undoes later in the file is no break, a re-created enum is one finding judged by its labels,
a re-created table by its columns."""

from __future__ import annotations

import pytest

from release_runner.core import detect
from release_runner.core.net_effect import file_hits
from tests.conftest import migration_value

PRISMA_ENUM_SWAP = """BEGIN;
CREATE TYPE "State_new" AS ENUM ('draft', 'sent');
ALTER TABLE "Doc" ALTER COLUMN "state" DROP DEFAULT;
ALTER TABLE "Doc" ALTER COLUMN "state" TYPE "State_new" USING ("state"::text::"State_new");
ALTER TABLE "Doc" ALTER COLUMN "states" TYPE "State_new"[] USING ("states"::text[]::"State_new"[]);
ALTER TYPE "State" RENAME TO "State_old";
ALTER TYPE "State_new" RENAME TO "State";
DROP TYPE "State_old";
ALTER TABLE "Doc" ALTER COLUMN "state" SET DEFAULT 'draft';
COMMIT;
"""


def _hits(sql: str, created: set[tuple[str, str]] | None = None) -> list[detect.Hit]:
    statements = migration_value("0001", sql).statements
    return [judged.hit for judged in file_hits(statements, created if created is not None else set())]


def _found(sql: str) -> list[tuple[str, str | None, str | None]]:
    return [(hit.rule, hit.name, hit.column) for hit in _hits(sql)]


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE t ALTER a DROP DEFAULT;\nALTER TABLE t ALTER a SET DEFAULT 'x';",
        "ALTER TABLE t ALTER a SET DEFAULT 0;\nALTER TABLE t ALTER a SET NOT NULL;",
        "ALTER TABLE t ALTER a SET NOT NULL, ALTER a SET DEFAULT 0;",
        "DROP VIEW v;\nCREATE VIEW v AS SELECT * FROM t;",
        "ALTER TABLE t ADD COLUMN tmp int;\nALTER TABLE t DROP COLUMN tmp;",
        "ALTER TABLE t ADD COLUMN tmp int;\nALTER TABLE t RENAME COLUMN tmp TO tmp2;",
        "ALTER TABLE t ADD COLUMN c int;\nALTER TABLE t ALTER c SET NOT NULL;\nALTER TABLE t ALTER c TYPE bigint;",
        "DROP TYPE mood;\nCREATE TYPE mood AS DOMAIN_LESS;".replace(" AS DOMAIN_LESS", " AS (x int)"),
    ],
)
def test_what_the_file_undoes_is_no_break(sql: str) -> None:
    rules = {"drop-default", "set-not-null", "drop-view", "rename-view", "drop-column", "rename-column"}
    assert not [hit for hit in _found(sql) if hit[0] in rules | {"change-column-type", "drop-type"}]


def test_prismas_enum_swap_is_one_finding_with_its_labels() -> None:
    """Not drop-default, change-column-type, rename-type and drop-type: one remove-enum-value
    on the statement that gives the name back, carrying the labels; the columns moved to it
    keep their type (as the catalog will name it) and the default is set again."""
    hits = _hits(PRISMA_ENUM_SWAP)
    assert [(h.rule, h.name) for h in hits] == [
        ("change-column-type", "Doc"),
        ("change-column-type", "Doc"),
        ("remove-enum-value", "State"),
    ]
    state, states, enum = hits
    assert (state.new_type, states.new_type) == (("State", -1), ("_State", -1))
    assert enum.labels == ("draft", "sent") and enum.statement.line == 7
    before = detect.Before(
        {(detect.RELATION, "Doc"), (detect.TYPE, "State")},
        {
            "Doc": {
                "state": detect.Column(("State", -1), False),
                "states": detect.Column(("_State", -1), False),
            }
        },
        {"State": ("draft", "sent", "void")},
    )
    assert detect.verdict(state, before) is None and detect.verdict(states, before) is None
    assert detect.verdict(enum, before) == "; labels removed: void"
    kept = detect.Before(before.existing, before.columns, {"State": ("draft",)})
    assert detect.verdict(enum, kept) is None


def test_a_drop_then_create_of_an_enum_is_judged_by_its_labels() -> None:
    (hit,) = _hits("DROP TYPE public.mood;\nCREATE TYPE mood AS ENUM ('ok');")
    assert (hit.rule, hit.name, hit.labels) == ("remove-enum-value", "public.mood", ("ok",))


def test_a_table_created_again_is_judged_by_its_columns() -> None:
    (hit,) = _hits("DROP TABLE t;\nCREATE TABLE t (id int, v text);")
    assert (hit.rule, hit.recreated) == ("drop-table", frozenset({"id", "v"}))
    existing = {(detect.RELATION, "t")}
    same = detect.Before(
        existing, {"t": {"id": detect.Column(("int4", -1), False), "v": detect.Column(("text", -1), False)}}
    )
    fewer = detect.Before(existing, {"t": {**same.columns["t"], "w": detect.Column(("int4", -1), False)}})
    assert detect.verdict(hit, same) is None
    assert detect.verdict(hit, fewer) == "; it is created again without column(s) w"
    (renamed,) = _hits("ALTER TABLE t RENAME TO t_old;\nCREATE TABLE t (id int);\nDROP TABLE t_old;")
    assert (renamed.rule, renamed.recreated) == ("rename-table", frozenset({"id"}))


def test_set_not_null_uses_the_default_the_catalog_or_the_file_gives() -> None:
    (hit,) = _hits("ALTER TABLE t ALTER a SET NOT NULL;")
    existing = {(detect.RELATION, "t")}
    defaulted = detect.Before(existing, {"t": {"a": detect.Column(("int4", -1), True)}})
    assert detect.verdict(hit, defaulted) is None
    assert (
        detect.verdict(hit, detect.Before(existing, {"t": {"a": detect.Column(("int4", -1), False)}})) == ""
    )
    required = detect.Before(existing, {"t": {"a": detect.Column(("int4", -1), not_null=True)}})
    assert detect.verdict(hit, required) is None  # NOT NULL already: nothing changes for old code
    (again,) = _hits("ALTER TABLE t ALTER a DROP NOT NULL;\nALTER TABLE t ALTER a SET NOT NULL;")
    assert again.rule == "set-not-null"  # the drop-not-null warning is undone by the file
    hits = _hits("ALTER TABLE t ALTER a DROP DEFAULT;\nALTER TABLE t ALTER a SET NOT NULL;")
    assert [h.rule for h in hits] == ["drop-default", "set-not-null"]
    assert detect.verdict(hits[1], defaulted) == ""


def test_what_still_breaks_is_kept_column_by_column() -> None:
    """Each column of a multi-column ALTER is its own hit; a default dropped for good, a
    column of the batch's that is not the one dropped, a view dropped for good stay."""
    assert _found("ALTER TABLE t DROP COLUMN a, DROP COLUMN b;") == [
        ("drop-column", "t", "a"),
        ("drop-column", "t", "b"),
    ]
    assert _found("ALTER TABLE t ALTER a SET DEFAULT 1;\nALTER TABLE t ALTER a DROP DEFAULT;") == [
        ("drop-default", "t", "a")
    ]
    assert _found("ALTER TABLE t ADD COLUMN c int;\nALTER TABLE t DROP COLUMN d;") == [
        ("drop-column", "t", "d")
    ]
    assert _found("CREATE VIEW v AS SELECT 1;\nDROP VIEW v;\nDROP VIEW w;") == [("drop-view", "w", None)]
    # A column the batch added in an earlier file is new too.
    created: set[tuple[str, str]] = set()
    assert _hits("ALTER TABLE t ADD COLUMN c int;", created) == []
    assert _hits("ALTER TABLE public.t DROP COLUMN c;", created) == []


def test_a_view_created_again_is_judged_by_the_columns_its_text_names() -> None:
    """Aliases, column names, function names; a view over `*` cannot be named, and is kept."""
    (hit,) = _hits("DROP VIEW v;\nCREATE VIEW v (a) AS SELECT t.x, t.email AS mail, count(*) FROM t;")
    assert (hit.rule, hit.recreated) == ("drop-view", frozenset({"a", "mail", "count"}))
    existing = {(detect.RELATION, "v")}
    old = {name: detect.Column(("int4", -1)) for name in ("a", "mail", "count", "gone")}
    assert (
        detect.verdict(hit, detect.Before(existing, {"v": old}))
        == "; it is created again without column(s) gone"
    )
    (renamed,) = _hits("ALTER VIEW v RENAME TO v_old;\nCREATE VIEW v AS SELECT 1 AS one;\nDROP VIEW v_old;")
    assert (renamed.rule, renamed.recreated) == ("rename-view", frozenset({"one"}))
