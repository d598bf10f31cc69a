"""Pure: every difference between an expected schema and an actual one (both schema.py values),
as Mismatch values that say what differs and whether it fails a run; plus what is wrong in a
live schema whatever the snapshot says (an INVALID index, a constraint left NOT VALID)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from release_runner.core.objects import Objects
from release_runner.core.statements import shortened

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
    parts: tuple[tuple[str, int], ...] = ()
    """A missing (or extra) table's or view's own columns, constraints, indexes... that are
    missing (extra) with it, or changed (an index now on a renamed table): counted here, not
    reported one by one."""

    @property
    def fails(self) -> bool:
        """Extras, unvalidated or hand-validated constraints and renames warn (`--strict` fails
        them); the rest fail."""
        return self.kind not in _WARNINGS

    def describe(self) -> str:
        parts = ", ".join(f"{count} {_plural(kind, count)}" for kind, count in self.parts)
        with_parts = f" (with its {parts})" if parts else ""
        if self.kind is Kind.MISSING:
            return f"missing {self.object_type} {self.name}{with_parts}"
        if self.kind is Kind.EXTRA:
            return f"extra {self.object_type} {self.name}{with_parts} (only in the database)"
        if self.kind in (Kind.INVALID, Kind.UNVALIDATED):
            return f"{self.object_type} {self.name}: {self.actual}"
        if self.kind is Kind.RENAMED:
            return (
                f"renamed {self.object_type} {self.expected} to {self.actual} (same definition; "
                "statements that name it, such as ON CONFLICT ON CONSTRAINT, break)"
            )
        if self.kind is Kind.VALIDATED:
            return f"{self.object_type} {self.name}: validated by hand, NOT VALID in the snapshot (stricter)"
        return f"changed {self.object_type} {self.name}: {changes(self.expected, self.actual)}"

    def as_event(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "object_type": self.object_type,
            "name": self.name,
            "expected": self.expected,
            "actual": self.actual,
            **({"parts": dict(self.parts)} if self.parts else {}),
        }


# A function's definition is kept as a hash: only that it differs can be told.
_HASHED = "whole definition"


def attribute_changes(expected: dict[str, Any], found: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(attribute, expected, found) in words, attribute by attribute; a function's hashed
    definition last, as `definition`: only that it differs can be told."""
    rows = [
        (key, _value(expected.get(key), found.get(key)), _value(found.get(key), expected.get(key)))
        for key in sorted(set(expected) | set(found))
        if key != "body_md5" and expected.get(key) != found.get(key)
    ]
    if expected.get("body_md5") != found.get("body_md5"):
        rows.append((_HASHED, "the snapshot's", "differs (body, arguments' defaults, COST...)"))
    return rows


def changes(expected: dict[str, Any], found: dict[str, Any]) -> str:
    """What changed, in one line: `config none → search_path=public; strict false → true`."""
    return "; ".join(
        f"its {key} {now}" if key == _HASHED else f"{key} {was} → {now}"
        for key, was, now in attribute_changes(expected, found)
    )


def _value(value: Any, other: Any) -> str:
    """An attribute's value as a person reads it: an absent flag is false, an absent value
    none; a custom setting's value (a dotted name in a function's SET) is not shown."""
    if value is None:
        return "false" if isinstance(other, bool) else "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        shown = [
            item.split("=", 1)[0] + "=…" if "." in item.split("=", 1)[0] else item for item in map(str, value)
        ]
        return ", ".join(shown) or "none"
    return shortened(str(value), 80)


def _plural(kind: str, count: int) -> str:
    if count == 1 or kind == "statistics":
        return kind
    return kind + ("es" if kind.endswith("x") else "s")


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
            if found_attrs is not None and object_type == "function" and "strict" not in wanted:
                # A snapshot taken before functions kept STRICT and SET on their own.
                found_attrs = {k: v for k, v in found_attrs.items() if k not in ("strict", "config")}
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
    return sorted(_folded(found), key=lambda m: (m.object_type, m.name, m.kind))


# What belongs to a table or view: reported with it when the whole relation is missing or extra.
_PARTS = ("column", "constraint", "index", "trigger", "policy", "rule", "statistics")


def _folded(found: list[Mismatch]) -> list[Mismatch]:
    """The mismatches, with the parts of a relation that is missing (or extra) as a whole
    counted in the relation's own mismatch rather than listed: a missing table is one line."""
    whole = {
        (m.kind, m.name)
        for m in found
        if m.object_type in ("table", "view") and m.kind in (Kind.MISSING, Kind.EXTRA)
    }
    if not whole:
        return found
    kept: list[Mismatch] = []
    counted: dict[tuple[Kind, str], dict[str, int]] = {}
    for mismatch in found:
        # A part that changed with its table gone (an index now on a renamed table) counts too.
        side = Kind.EXTRA if mismatch.kind is Kind.EXTRA else Kind.MISSING
        owner = (side, _relation_of(mismatch))
        if mismatch.object_type in _PARTS and owner in whole:
            parts = counted.setdefault(owner, {})
            parts[mismatch.object_type] = parts.get(mismatch.object_type, 0) + 1
        else:
            kept.append(mismatch)
    return [
        replace(m, parts=tuple(sorted(counted.get((m.kind, m.name), {}).items())))
        if m.object_type in ("table", "view")
        else m
        for m in kept
    ]


def _relation_of(mismatch: Mismatch) -> str:
    """The table a column, constraint, index... belongs to: its `table`, or its name's prefix."""
    attrs = mismatch.actual if mismatch.kind is Kind.EXTRA else mismatch.expected
    table = attrs.get("table") if isinstance(attrs, dict) else None
    return str(table) if table else mismatch.name.rsplit(".", 1)[0]


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


def another_database(expected: Objects | None, mismatches: list[Mismatch]) -> tuple[int, int] | None:
    """(missing, expected) tables when most of the tables the snapshot expects are missing (at
    least 2, over half): the URL points at another database, and listing thousands of missing
    objects would hide that."""
    tables = len((expected or {}).get("table", {}))
    missing = sum(1 for m in mismatches if m.kind is Kind.MISSING and m.object_type == "table")
    return (missing, tables) if tables >= 2 and missing * 2 > tables else None
