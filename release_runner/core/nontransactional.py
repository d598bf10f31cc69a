"""Pure: what PostgreSQL will not do inside a transaction block, read from parse trees before
anything runs. Two kinds: statements the server refuses in a block at all (SQLSTATE 25001, the
list audited against PostgreSQL 15's `PreventInTransactionBlock` calls), and an enum value added
by `ALTER TYPE ... ADD VALUE` then used before the transaction commits (SQLSTATE 55P04).

Not decidable from the text alone, and so left to the server: `REINDEX TABLE` and `CLUSTER` of a
partitioned table (the parse tree does not say the table is partitioned). Such a statement alone
in its file fails in its own transaction and is rolled back, like any failed migration."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from release_runner.core.statements import Statement, dotted_name, node
from release_runner.core.trees import nodes

# Refused in a transaction block whatever their options.
_ALWAYS = {
    "CreatedbStmt",
    "DropdbStmt",
    "AlterSystemStmt",
    "CreateTableSpaceStmt",
    "DropTableSpaceStmt",
    "CreateSubscriptionStmt",  # with create_slot, the default
    "DropSubscriptionStmt",  # when the subscription has a slot, the usual case
}
_REINDEX_MANY = {"REINDEX_OBJECT_SCHEMA", "REINDEX_OBJECT_SYSTEM", "REINDEX_OBJECT_DATABASE"}
# ALTER SUBSCRIPTION forms that refresh the publication (refresh defaults to true).
_SUBSCRIPTION_REFRESH = {
    "ALTER_SUBSCRIPTION_REFRESH",
    "ALTER_SUBSCRIPTION_SET_PUBLICATION",
    "ALTER_SUBSCRIPTION_ADD_PUBLICATION",
    "ALTER_SUBSCRIPTION_DROP_PUBLICATION",
}


def _option_names(options: list[dict[str, Any]] | None) -> set[str]:
    return {str(item.get("DefElem", {}).get("defname")) for item in options or []}


def refuses_transaction_block(statement: Statement) -> bool:
    """True for statements PostgreSQL refuses to run inside a transaction block."""
    kind, body = node(statement)
    if kind in _ALWAYS:
        return True
    if kind in ("IndexStmt", "DropStmt"):
        return bool(body.get("concurrent"))
    if kind == "ReindexStmt":
        return "concurrently" in _option_names(body.get("params")) or body.get("kind") in _REINDEX_MANY
    if kind == "VacuumStmt":
        return bool(body.get("is_vacuumcmd"))
    if kind == "ClusterStmt":
        return not body.get("relation")  # CLUSTER of every table commits per table
    if kind == "DiscardStmt":
        return body.get("target") == "DISCARD_ALL"
    if kind == "AlterDatabaseStmt":
        return "tablespace" in _option_names(body.get("options"))
    if kind == "AlterSubscriptionStmt":
        return body.get("kind") in _SUBSCRIPTION_REFRESH
    if kind == "AlterTableStmt":
        return any(
            command.get("subtype") == "AT_DetachPartition"
            and command.get("def", {}).get("PartitionCmd", {}).get("concurrent")
            for command in (item.get("AlterTableCmd", {}) for item in body.get("cmds", []))
        )
    return False


def _string_constants(tree: Any) -> Iterator[str]:
    """Every string constant in a parse tree."""
    for item in nodes(tree):
        constant = item.get("A_Const")
        if isinstance(constant, dict) and "sval" in constant:
            yield str(constant["sval"].get("sval", ""))


def enum_values_used_too_soon(statements: list[Statement]) -> list[tuple[Statement, str]]:
    """(using statement, enum type) for each enum value that an `ALTER TYPE ... ADD VALUE`
    adds and a later statement of the same transaction names as a string constant: PostgreSQL
    refuses to use it before the transaction commits. A type created in the same transaction
    is exempt (the server allows it). A constant equal to the value is taken as a use; where it
    is not one, the rule is switched off with an `allow` comment."""
    created: set[str] = set()
    added: dict[str, str] = {}  # value -> type
    found = []
    for statement in statements:
        kind, body = node(statement)
        if kind == "CreateEnumStmt":
            created.add(dotted_name(body.get("typeName", [])))
        elif kind == "AlterEnumStmt" and body.get("newVal") is not None and not body.get("oldVal"):
            type_name = dotted_name(body.get("typeName", []))
            if type_name not in created:
                added[str(body["newVal"])] = type_name
        elif added:
            for value in dict.fromkeys(_string_constants(statement.node)):
                if value in added:
                    found.append((statement, added[value]))
    return found
