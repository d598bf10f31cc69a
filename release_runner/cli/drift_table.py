"""The console's view of schema differences: one table (what, object, attribute, expected,
found) instead of a sentence per `verify.mismatch`, a row per changed attribute, values cut to
a column's width. The events stay one per difference in the JSON lines."""

from __future__ import annotations

from typing import Any

from release_runner.core.drift import attribute_changes
from release_runner.core.statements import shortened

_HEADER = ("", "OBJECT", "ATTRIBUTE", "EXPECTED", "FOUND")
_WIDEST = 48


def rows(facts: dict[str, Any]) -> list[tuple[str, ...]]:
    """The rows of one difference: a row per changed attribute, or one for the whole object
    with what it says of it (missing, extra, invalid and what to do...), never cut."""
    kind, what = str(facts.get("kind")), f"{facts.get('object_type')} {facts.get('name')}"
    expected, found = facts.get("expected"), facts.get("actual")
    if kind == "changed" and isinstance(expected, dict) and isinstance(found, dict):
        changes = attribute_changes(expected, found)
        return [
            (kind if i == 0 else "", what if i == 0 else "", *(shortened(cell, _WIDEST) for cell in change))
            for i, change in enumerate(changes)
        ]
    described = str(facts.get("describe") or "")
    name = str(facts.get("name") or "")
    return [(kind, what, described.split(name, 1)[-1].strip(" :") if name else described)]


def render(differences: list[tuple[bool, dict[str, Any]]], paint: Any) -> str:
    """The table, a failing difference's rows in red and a warning's in yellow. The first
    two columns line up on every row; the attribute columns on the rows of changes."""
    table = [(True, _HEADER)] + [(fails, row) for fails, facts in differences for row in rows(facts)]
    widths = [
        max(len(row[i]) for _, row in table if len(row) > i and (i < 2 or len(row) == 5)) for i in range(5)
    ]
    lines = []
    for number, (fails, row) in enumerate(table):
        aligned = row if len(row) == 5 else row[:2]
        cells = [cell.ljust(width) for cell, width in zip(aligned, widths, strict=False)] + list(
            row[len(aligned) :]
        )
        text = "  " + "  ".join(cells).rstrip()
        lines.append(paint(text, "bold") if number == 0 else paint(text, "red" if fails else "yellow"))
    return "\n".join(lines)
