"""Pure: statements that take away the ground the runner stands on. Two kinds, each refused by
preflight before anything runs:

- `releases-runner-lock`: `DISCARD ALL`, or a call of `pg_advisory_unlock_all()` (also inside a
  DO block's code). Either releases every session advisory lock, the runner's among them, and
  another runner could then apply the same migrations at the same time.
- `runner-schema`: a statement that changes the runner's own history and deferred tables (a
  rule or trigger on them, an ALTER, a write) or its schema: the history decides what is
  applied, and a rule that swallows its INSERTs makes every later migration look applied.
  Reading them (a SELECT) is allowed.

What the text cannot show (a function that calls pg_advisory_unlock_all, a trigger added by
hand) is caught when it happens: after every migration the executor proves, in the same
message, that the lock is still held and the history row written (db/history.RunContext.guard).
"""

from __future__ import annotations

import re
from typing import Any

from release_runner.core.statements import Statement, node
from release_runner.core.trees import nodes

RUNNER_TABLES = ("history", "deferred")
_UNLOCK_ALL = "pg_advisory_unlock_all"
_IN_CODE = re.compile(rf"\b{_UNLOCK_ALL}\b|\bdiscard\s+all\b", re.IGNORECASE)


def releases_runner_lock(statement: Statement) -> bool:
    """DISCARD ALL, or pg_advisory_unlock_all() called by the statement or a DO block's code."""
    kind, body = node(statement)
    if kind == "DiscardStmt":
        return body.get("target") == "DISCARD_ALL"
    if kind == "DoStmt":
        return bool(_IN_CODE.search(statement.text))
    for item in nodes(body):
        names = item.get("FuncCall", {}).get("funcname", [])
        if names and names[-1].get("String", {}).get("sval") == _UNLOCK_ALL:
            return True
    return False


def changes_runner_schema(statement: Statement, schema: str) -> bool:
    """A statement whose target (not a table it only reads) is one of the runner's tables in
    `schema`, or the schema itself: a rule, trigger, policy, ALTER, write, lock, grant, DROP on
    them, or CREATE/ALTER/DROP SCHEMA of it."""
    kind, body = node(statement)
    if kind == "CreateSchemaStmt" and body.get("schemaname") == schema:
        return True
    if kind == "RenameStmt" and body.get("renameType") == "OBJECT_SCHEMA" and body.get("subname") == schema:
        return True
    if kind == "AlterOwnerStmt" and body.get("objectType") == "OBJECT_SCHEMA":
        return bool(body.get("object", {}).get("String", {}).get("sval") == schema)
    targets = [body.get("relation"), body.get("table"), *body.get("relations", []), *body.get("objects", [])]
    return any(_is_runner_object(target, schema, body) for target in targets if isinstance(target, dict))


def _is_runner_object(target: dict[str, Any], schema: str, body: dict[str, Any]) -> bool:
    """A target as a RangeVar (bare or wrapped) or a qualified name (a DROP's List of Strings,
    or a DROP SCHEMA's one String)."""
    relation = target.get("RangeVar", target)
    if relation.get("schemaname") == schema and relation.get("relname") in RUNNER_TABLES:
        return True
    items = target.get("List", {}).get("items") or [target]
    parts = [str(item.get("String", {}).get("sval")) for item in items]
    if parts == [schema]:
        return body.get("removeType") == "OBJECT_SCHEMA"
    return len(parts) >= 2 and parts[0] == schema and parts[1] in RUNNER_TABLES
