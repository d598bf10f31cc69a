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
