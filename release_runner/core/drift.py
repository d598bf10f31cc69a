"""Pure: every difference between an expected schema and an actual one (both schema.py values),
as Mismatch values that say what differs and whether it fails a run; plus what is wrong in a
live schema whatever the snapshot says (an INVALID index, a constraint left NOT VALID)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from release_runner.core.objects import Objects

# Objects whose names PostgreSQL may generate: matched by meaning when the names differ.
_RENAMEABLE = ("constraint", "index")


class Kind(StrEnum):
    """What a difference is. Extras, unvalidated or hand-validated constraints and renames
    warn (`--strict` fails them); the rest fail."""

    MISSING = "missing"
    CHANGED = "changed"
    EXTRA = "extra"
    INVALID = "invalid"  # an INVALID index
    UNVALIDATED = "unvalidated"  # a NOT VALID constraint the snapshot does not expect
    VALIDATED = "validated"  # validated by hand, NOT VALID in the snapshot
    RENAMED = "renamed"


_WARNINGS = {Kind.EXTRA, Kind.UNVALIDATED, Kind.VALIDATED, Kind.RENAMED}


@dataclass(frozen=True)
class Mismatch:
    """One difference between an expected schema and an actual one."""

    kind: Kind
    object_type: str
    name: str
    expected: Any = None
    actual: Any = None

    @property
    def fails(self) -> bool:
        """Extras, unvalidated or hand-validated constraints and renames warn (`--strict` fails
        them); the rest fail."""
        return self.kind not in _WARNINGS

    def describe(self) -> str:
        if self.kind is Kind.MISSING:
            return f"missing {self.object_type} {self.name}"
        if self.kind is Kind.EXTRA:
            return f"extra {self.object_type} {self.name} (only in the database)"
        if self.kind in (Kind.INVALID, Kind.UNVALIDATED):
            return f"{self.object_type} {self.name}: {self.actual}"
        if self.kind is Kind.RENAMED:
            return (
                f"renamed {self.object_type} {self.expected} to {self.actual} (same definition; "
                "statements that name it, such as ON CONFLICT ON CONSTRAINT, break)"
            )
        if self.kind is Kind.VALIDATED:
            return f"{self.object_type} {self.name}: validated by hand, NOT VALID in the snapshot (stricter)"
        expected, found = json.dumps(self.expected, sort_keys=True), json.dumps(self.actual, sort_keys=True)
        return f"changed {self.object_type} {self.name}: expected {expected}, found {found}"

    def as_event(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "object_type": self.object_type,
            "name": self.name,
            "expected": self.expected,
            "actual": self.actual,
        }


def diff(expected: Objects, actual: Objects) -> list[Mismatch]:
    """Every difference between the expected and the live schema, in a stable order."""
    found: list[Mismatch] = []
    for object_type in sorted(set(expected) | set(actual)):
        want = expected.get(object_type, {})
        have = actual.get(object_type, {})
        if want == have:  # the usual case, compared in C: no need to look name by name
            continue
        missing = [name for name in want if name not in have]
        extra = [name for name in have if name not in want]
        if object_type in _RENAMEABLE:
            missing, extra, renamed = _pair_renamed(want, have, missing, extra)
            found.extend(Mismatch(Kind.RENAMED, object_type, new, old, new) for old, new in renamed)
        found.extend(Mismatch(Kind.MISSING, object_type, name, want[name]) for name in missing)
        for name, wanted in want.items():
            found_attrs = have.get(name)
            if found_attrs is None or found_attrs == wanted:
                continue
            changed = {k for k in set(wanted) | set(found_attrs) if wanted.get(k) != found_attrs.get(k)}
            if changed:
                # A NOT VALID constraint someone validated by hand: stricter, not drift.
                stricter = changed == {"validated"} and found_attrs.get("validated") is True
                found.append(
                    Mismatch(
                        Kind.VALIDATED if stricter else Kind.CHANGED,
                        object_type,
                        name,
                        {k: wanted.get(k) for k in sorted(changed)},
                        {k: found_attrs.get(k) for k in sorted(changed)},
                    )
                )
        found.extend(Mismatch(Kind.EXTRA, object_type, name, None, have[name]) for name in extra)
    return sorted(found, key=lambda m: (m.object_type, m.name, m.kind))


def _pair_renamed(
    want: dict[str, dict[str, Any]],
    have: dict[str, dict[str, Any]],
    missing: list[str],
    extra: list[str],
) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """Pair missing and extra objects that differ only in their name: the names PostgreSQL
    generates change between versions, so a pair is no failure, but it is reported (a warning),
    since `ON CONFLICT ON CONSTRAINT name` and the like break on a rename."""
    unmatched = list(extra)
    still_missing = []
    renamed = []
    for name in missing:
        twin = next((other for other in unmatched if have[other] == want[name]), None)
        if twin is None:
            still_missing.append(name)
        else:
            unmatched.remove(twin)
            renamed.append((name, twin))
    return still_missing, unmatched, renamed


def health(actual: Objects, expected: Objects | None) -> list[Mismatch]:
    """Checks that need no snapshot: an INVALID index (left by a failed CREATE INDEX
    CONCURRENTLY) always fails. A NOT VALID constraint is flagged unless the snapshot expects
    it; without a snapshot it only warns, since projects add constraints NOT VALID on purpose
    (trigger.dev's history does) and nothing else tells intent from accident."""
    found = []
    for name, index in actual.get("index", {}).items():
        if not index["valid"]:
            found.append(
                Mismatch(
                    Kind.INVALID,
                    "index",
                    name,
                    None,
                    f"INVALID (a failed CREATE INDEX CONCURRENTLY?); DROP INDEX CONCURRENTLY {name} "
                    "and rerun the migration that builds it",
                )
            )
    expected_constraints = (expected or {}).get("constraint", {})
    for name, constraint in actual.get("constraint", {}).items():
        intended = expected_constraints.get(name, {}).get("validated") is False
        if not constraint["validated"] and not intended:
            found.append(
                Mismatch(
                    Kind.UNVALIDATED,
                    "constraint",
                    name,
                    None,
                    f"NOT VALID; ALTER TABLE {constraint['table']} VALIDATE CONSTRAINT "
                    f"{name.rsplit('.', 1)[-1]}, or record it NOT VALID in the snapshot",
                )
            )
    return found


def compare(expected: Objects | None, actual: Objects) -> list[Mismatch]:
    """diff() when there is a snapshot, plus health(), without reporting an object twice: an
    index that differs only in being INVALID is reported as `invalid` (with what to do), not
    as `changed`."""
    checked = health(actual, expected)
    invalid = {m.name for m in checked if m.kind is Kind.INVALID}
    found = [
        m
        for m in (diff(expected, actual) if expected is not None else [])
        if not (m.object_type == "index" and m.name in invalid and set(m.expected or {}) == {"valid"})
    ]
    reported = {(m.object_type, m.name) for m in found if m.fails}
    found.extend(m for m in checked if (m.object_type, m.name) not in reported)
    return found
