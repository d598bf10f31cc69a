"""core/drift.py: every difference between two schemas, and what fails without a snapshot."""

from __future__ import annotations

from typing import Any

import pytest

from release_runner.core import drift
from release_runner.core.objects import Objects


def _objects(**kinds: dict[str, dict[str, Any]]) -> Objects:
    return {kind: dict(items) for kind, items in kinds.items()}


INDEX = {
    "table": "public.t",
    "definition": "CREATE INDEX ON public.t USING btree (a)",
    "unique": False,
    "valid": True,
}


@pytest.mark.parametrize(
    ("expected", "actual", "kinds"),
    [
        (
            _objects(column={"public.t.a": {"type": "integer", "nullable": True}}),
            _objects(column={}),
            ["missing"],
        ),
        (
            _objects(column={}),
            _objects(column={"public.t.a": {"type": "integer", "nullable": True}}),
            ["extra"],
        ),
        (
            _objects(column={"public.t.a": {"type": "integer", "nullable": True}}),
            _objects(column={"public.t.a": {"type": "bigint", "nullable": True}}),
            ["changed"],
        ),
        # A renamed index with the same meaning is reported as a rename (a warning)...
        (_objects(index={"public.t_a_idx": INDEX}), _objects(index={"public.t_a_idx1": INDEX}), ["renamed"]),
        # ...but one with another meaning is both missing and extra.
        (
            _objects(index={"public.t_a_idx": INDEX}),
            _objects(
                index={"public.other": {**INDEX, "definition": "CREATE INDEX ON public.t USING btree (b)"}}
            ),
            ["missing", "extra"],
        ),
    ],
)
def test_schema_diff(expected: Objects, actual: Objects, kinds: list[str]) -> None:
    """diff() names each difference once, by kind; renamed generated names pair up and warn."""
    found = drift.diff(expected, actual)
    assert sorted(m.kind for m in found) == sorted(kinds)
    assert all(m.fails == (m.kind in ("missing", "changed")) for m in found)


def test_invalid_index_fails_without_a_snapshot() -> None:
    """health(): an INVALID index fails, a NOT VALID constraint only warns without a snapshot."""
    actual = _objects(
        index={"public.i": {**INDEX, "valid": False}},
        constraint={
            "public.t.c": {
                "table": "public.t",
                "type": "check",
                "definition": "CHECK (a > 0)",
                "validated": False,
            }
        },
    )
    found = {m.kind: m.fails for m in drift.compare(None, actual)}
    assert found == {"invalid": True, "unvalidated": False}


FUNCTION = {
    "kind": "function",
    "language": "plpgsql",
    "returns": "trigger",
    "volatility": "volatile",
    "strict": False,
    "config": ["search_path=public"],
    "body_md5": "a",
}


def test_a_changed_function_names_what_changed_in_words() -> None:
    """Not two hashes: the SET clause removed, STRICT and SECURITY DEFINER added (an absent flag
    reads false, never null), a custom setting's value hidden, and the definition last."""
    found = {
        **FUNCTION,
        "strict": True,
        "security_definer": True,
        "config": ["app.key=s3cret"],
        "body_md5": "b",
    }
    (mismatch,) = drift.diff(
        _objects(function={"public.f()": FUNCTION}), _objects(function={"public.f()": found})
    )
    text = mismatch.describe()
    assert text.startswith(
        "changed function public.f(): config search_path=public → app.key=…; "
        "security_definer false → true; strict false → true; its whole definition"
    )
    assert "s3cret" not in text and "null" not in text


def test_a_snapshot_taken_before_strict_and_config_were_kept_does_not_fail_on_them() -> None:
    older = {k: v for k, v in FUNCTION.items() if k not in ("strict", "config")}
    live = {**FUNCTION, "strict": True}
    assert drift.diff(_objects(function={"public.f()": older}), _objects(function={"public.f()": live})) == []


def test_a_missing_table_is_one_line_and_another_database_is_named() -> None:
    tables = {f"public.t{i}": {"kind": "table"} for i in range(4)}
    columns = {f"public.t{i}.c{j}": {"type": "int"} for i in range(4) for j in range(3)}
    index = {"public.t0_idx": {**INDEX, "table": "public.t0"}}
    expected = _objects(table=tables, column=columns, index=index)
    one_gone = _objects(
        table={k: v for k, v in tables.items() if k != "public.t0"},
        column={k: v for k, v in columns.items() if not k.startswith("public.t0.")},
    )
    (missing,) = drift.diff(expected, one_gone)
    assert missing.describe() == "missing table public.t0 (with its 3 columns, 1 index)"
    assert drift.another_database(expected, [missing]) is None
    elsewhere = drift.diff(expected, _objects(table={"public.other": {"kind": "table"}}))
    assert drift.another_database(expected, elsewhere) == (4, 4)
