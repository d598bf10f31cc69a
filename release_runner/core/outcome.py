"""Pure: what the catalog proves about a no-transaction migration whose end the runner did not
see (the connection was lost, a signal arrived, the runner vanished). Only statements whose
effect is one index can be judged: CREATE INDEX CONCURRENTLY (the index exists and is valid:
applied; exists INVALID: failed, left behind; absent: never took effect) and DROP INDEX
CONCURRENTLY (absent: applied; present: not applied). Anything else is unknown, and a human
decides with `repair`."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from release_runner.core.statements import Statement, quote_ident


class Outcome(StrEnum):
    APPLIED = "applied"
    NOT_APPLIED = "not_applied"
    INVALID = "invalid"
    UNKNOWN = "unknown"


def judged_index(statements: list[Statement]) -> tuple[str, str] | None:
    """("create" | "drop", qualified index name) when the migration is one such statement."""
    if len(statements) != 1 or statements[0].node is None:
        return None
    kind, body = next(iter(statements[0].node.items()))
    if kind == "IndexStmt" and body.get("concurrent") and body.get("idxname"):
        schema = body.get("relation", {}).get("schemaname")
        return "create", _qualified(schema, body["idxname"])
    if kind == "DropStmt" and body.get("concurrent") and body.get("removeType") == "OBJECT_INDEX":
        objects: list[Any] = body.get("objects", [])
        if len(objects) == 1:
            names = [item["String"]["sval"] for item in objects[0]["List"]["items"]]
            return "drop", _qualified(names[0] if len(names) == 2 else None, names[-1])
    return None


def _qualified(schema: str | None, name: str) -> str:
    return _identifier(name) if schema is None else f"{_identifier(schema)}.{_identifier(name)}"


def _identifier(name: str) -> str:
    """The name as SQL writes it: bare when it can be, quoted otherwise."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return quote_ident(name)


def judge(action: str, valid: bool | None) -> Outcome:
    """The outcome of a create/drop of an index whose catalog state is `valid` (None: absent)."""
    if action == "create":
        if valid is None:
            return Outcome.NOT_APPLIED
        return Outcome.APPLIED if valid else Outcome.INVALID
    return Outcome.APPLIED if valid is None else Outcome.NOT_APPLIED


REASONS = {
    Outcome.APPLIED: "the catalog shows the statement took effect",
    Outcome.NOT_APPLIED: "the catalog shows the statement never took effect; it will run again",
    Outcome.INVALID: "the index exists but is INVALID: the build failed and left it behind",
    Outcome.UNKNOWN: "the catalog cannot tell whether this statement finished",
}


def advice(version: str, statements: list[Statement]) -> str:
    """What a human does about a no-transaction migration that failed or was cut short: it
    could not be rolled back, and runs stay refused until `repair` records what was done.
    Every command in it runs as printed."""
    text = (
        "It ran without a transaction, so nothing was rolled back, and it is recorded as "
        "unfinished: check the database, then `release-runner repair --applied "
        f"{version} --reason '...'` or `release-runner repair --forget {version} --reason '...'`."
    )
    judged = judged_index(statements)
    if judged is not None and judged[0] == "create":
        text += (
            " A failed CREATE INDEX CONCURRENTLY leaves an INVALID index: DROP INDEX "
            f"CONCURRENTLY IF EXISTS {judged[1]}, then `release-runner repair --forget {version} "
            "--reason 'dropped the invalid index'` and deploy again."
        )
    return text
