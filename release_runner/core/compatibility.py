"""Pure: the release-phase compatibility rules. On Fly.io the release command runs while the
previous release's Machines keep serving; a statement that removes or tightens what their code
uses makes them answer 500 until they are replaced. In the release phase such a statement, on a
table that existed before the run, refuses the batch (exit 5) unless its file is a post-deploy
migration or the rule is allowed with `-- release-runner: allow RULE`.

The rules and what counts as breaking:
- `drop-table`, `drop-column`, `rename-table`, `rename-column`: the old code names them.
- `change-column-type` unless a safe widening: `varchar(n)` to a longer `varchar`, `varchar` or
  `text`; `text` to `varchar`; `numeric(p,s)` to more precision with the same scale, or to
  `numeric`; `varbit(n)` to a longer one; `smallint` to `integer`. `integer` to `bigint` is not
  counted safe: drivers such as node-postgres return `bigint` as a string, which the old code
  does not expect. A `USING` clause is a conversion, never a widening.
- `set-not-null`, `add-column-not-null-without-default`: the old code's INSERTs leave the
  column out and fail.
- `drop-default`: the old code's INSERTs rely on it.
- `drop-view`, `rename-view`, `set-schema` (a table, view or type moved to another schema),
  `drop-schema`, `rename-schema`, `drop-type`, `rename-type`, `rename-enum-value`: the old
  code names them, or writes the old label.

Not judged: functions (old code seldom calls them by name, and replacing one often means
dropping it), and new constraints (whether old code's rows violate them depends on the data).

This module finds the candidates in parse trees; which tables existed, and the old column types,
come from the catalog (refusals.lint asks)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from release_runner.core.preflight import Prepared, required_without_default
from release_runner.core.statements import Statement, dotted_name, node, relation_name, sets_search_path

MOVE = (
    "Make it a contract step: put it in a migration whose header says "
    "`-- release-runner: post-deploy`, applied once every Machine runs the new code"
)
MESSAGES = {
    "drop-table": "drops a table the running release may still read",
    "drop-column": "drops a column the running release may still read or write",
    "rename-table": "renames a table the running release still uses by its old name",
    "rename-column": "renames a column the running release still uses by its old name",
    "change-column-type": "changes a column's type to one the running release may not read or "
    "write (not a safe widening)",
    "set-not-null": "makes a column NOT NULL while the running release may still insert rows without it",
    "add-column-not-null-without-default": "adds a NOT NULL column without a default: the running "
    "release's INSERTs leave it out and fail",
    "drop-default": "drops a default the running release's INSERTs may rely on",
    "drop-view": "drops a view the running release may still read",
    "rename-view": "renames a view the running release still reads by its old name",
    "set-schema": "moves a table, view or type to another schema, out of the running release's reach",
    "drop-schema": "drops a schema, and everything in it, that the running release may use",
    "rename-schema": "renames a schema the running release still uses by its old name",
    "drop-type": "drops a type the running release may still use",
    "rename-type": "renames a type the running release still uses by its old name",
    "rename-enum-value": "renames an enum value the running release still writes and compares",
}
# Where moving the statement to a post-deploy migration (MOVE) is not the whole fix.
_FIXES = {
    "rename-column": "Add the new column and write both (expand), backfill, and drop the old one "
    "in a post-deploy migration (contract); see the README's three-release rename",
    "change-column-type": "Add a column of the new type, write both, backfill, and drop the old "
    "one in a post-deploy migration",
    "add-column-not-null-without-default": "Give it a DEFAULT, or add it nullable now and SET NOT "
    "NULL in a post-deploy migration",
    "rename-enum-value": "Add the new value in a migration of its own (ADD VALUE), move the rows "
    "over, and stop using the old one in a post-deploy migration",
}


def fix(rule: str) -> str:
    return _FIXES.get(rule, MOVE)


# What a candidate's name is: its existence is read from the catalog by kind.
RELATION, SCHEMA, TYPE = "relation", "schema", "type"
_TABLES = ("OBJECT_TABLE", "OBJECT_FOREIGN_TABLE")
_VIEWS = ("OBJECT_VIEW", "OBJECT_MATVIEW")
_TYPES = ("OBJECT_TYPE", "OBJECT_DOMAIN")
# A type as the catalog keeps it: typname and atttypmod.
ColumnType = tuple[str, int]


@dataclass(frozen=True)
class Candidate:
    """A statement that breaks the running release if `table` existed before the run."""

    rule: str
    table: str
    """The object's name: a table's, or a view's, schema's or type's (see `kind`)."""
    statement: Statement
    column: str | None = None
    new_type: ColumnType | None = None
    kind: str = RELATION


def _type(type_name: dict[str, Any]) -> ColumnType | None:
    """typname and typmod as PostgreSQL would store them, for the types a widening involves."""
    name = str(type_name.get("names", [{}])[-1].get("String", {}).get("sval"))
    if type_name.get("arrayBounds"):
        return None
    mods = [m.get("A_Const", {}).get("ival", {}).get("ival", 0) for m in type_name.get("typmods", [])]
    if not mods:
        return name, -1
    if name in ("varchar", "bpchar"):
        return name, mods[0] + 4
    if name == "numeric":
        return name, ((mods[0] << 16) | (mods[1] if len(mods) > 1 else 0)) + 4
    if name == "varbit":
        return name, mods[0]
    return None


def safe_widening(old: ColumnType, new: ColumnType) -> bool:
    """True when every value of the old type reads back unchanged as the new one."""
    (old_name, old_mod), (new_name, new_mod) = old, new
    if old_name == new_name and old_name in ("varchar", "varbit"):
        return new_mod == -1 or (old_mod != -1 and new_mod >= old_mod)
    if old_name == new_name == "numeric":
        if new_mod == -1:
            return True
        same_scale = (old_mod - 4) & 0xFFFF == (new_mod - 4) & 0xFFFF
        return old_mod != -1 and same_scale and new_mod >= old_mod
    return (old_name, new_name) in {("varchar", "text"), ("text", "varchar"), ("int2", "int4")} and (
        new_name != "varchar" or new_mod == -1
    )


def _alter(table: str, statement: Statement, body: dict[str, Any]) -> Iterator[Candidate]:
    for item in body.get("cmds", []):
        command = item.get("AlterTableCmd", {})
        subtype, column = command.get("subtype"), command.get("name")
        definition = command.get("def", {})
        if subtype == "AT_DropColumn":
            yield Candidate("drop-column", table, statement, column)
        elif subtype == "AT_SetNotNull":
            yield Candidate("set-not-null", table, statement, column)
        elif subtype == "AT_ColumnDefault" and not definition:
            yield Candidate("drop-default", table, statement, column)
        elif subtype == "AT_AlterColumnType":
            column_def = definition.get("ColumnDef", {})
            new_type = None if column_def.get("raw_default") else _type(column_def.get("typeName", {}))
            yield Candidate("change-column-type", table, statement, column, new_type)
        elif subtype == "AT_AddColumn" and required_without_default(definition.get("ColumnDef", {})):
            yield Candidate("add-column-not-null-without-default", table, statement)


def _dropped(remove: str, item: dict[str, Any]) -> tuple[str, str, str] | None:
    """(rule, kind, name) for one object of a DROP."""
    if remove in _TABLES or remove in _VIEWS:
        rule = "drop-table" if remove in _TABLES else "drop-view"
        return rule, RELATION, dotted_name(item.get("List", {}).get("items", []))
    if remove == "OBJECT_SCHEMA":
        return "drop-schema", SCHEMA, str(item.get("String", {}).get("sval"))
    if remove in _TYPES:
        return "drop-type", TYPE, dotted_name(item.get("TypeName", {}).get("names", []))
    return None


def _statement(statement: Statement) -> Iterator[Candidate]:
    kind, body = node(statement)
    table = relation_name(body.get("relation"))
    rename = body.get("renameType")
    if kind == "AlterTableStmt" and body.get("objtype") == "OBJECT_TABLE" and table:
        yield from _alter(table, statement, body)
    elif kind == "DropStmt":
        for item in body.get("objects", []):
            dropped = _dropped(str(body.get("removeType")), item)
            if dropped:
                yield Candidate(dropped[0], dropped[2], statement, kind=dropped[1])
    elif kind == "RenameStmt" and table and (rename in _TABLES or rename in _VIEWS):
        yield Candidate("rename-table" if rename in _TABLES else "rename-view", table, statement)
    elif kind == "RenameStmt" and table and rename == "OBJECT_COLUMN":
        yield Candidate("rename-column", table, statement, body.get("subname"))
    elif kind == "RenameStmt" and rename == "OBJECT_SCHEMA":
        yield Candidate("rename-schema", str(body.get("subname")), statement, kind=SCHEMA)
    elif kind == "RenameStmt" and rename in _TYPES:
        name = dotted_name(body.get("object", {}).get("List", {}).get("items", []))
        yield Candidate("rename-type", name, statement, kind=TYPE)
    elif kind == "AlterObjectSchemaStmt" and table and body.get("objectType") in (*_TABLES, *_VIEWS):
        yield Candidate("set-schema", table, statement)
    elif kind == "AlterObjectSchemaStmt" and body.get("objectType") in _TYPES:
        name = dotted_name(body.get("object", {}).get("List", {}).get("items", []))
        yield Candidate("set-schema", name, statement, kind=TYPE)
    elif kind == "AlterEnumStmt" and body.get("oldVal"):
        yield Candidate("rename-enum-value", dotted_name(body.get("typeName", [])), statement, kind=TYPE)


def _created(statement: Statement) -> tuple[str, str] | None:
    """(kind, name) of what a statement creates, when it is a relation, schema or type."""
    kind, body = node(statement)
    if kind in ("CreateStmt", "CreateTableAsStmt", "ViewStmt"):
        name = (
            relation_name(body.get("relation"))
            or relation_name(body.get("into", {}).get("rel"))
            or relation_name(body.get("view"))
        )
        return (RELATION, name) if name else None
    if kind == "CreateSchemaStmt":
        return SCHEMA, str(body.get("schemaname"))
    if kind == "CreateEnumStmt":
        return TYPE, dotted_name(body.get("typeName", []))
    if kind == "CreateDomainStmt":  # its typeName is the base type
        return TYPE, dotted_name(body.get("domainname", []))
    if kind == "CompositeTypeStmt":
        name = relation_name(body.get("typevar"))
        return (TYPE, name) if name else None
    return None


def candidates(prepared: list[Prepared]) -> list[tuple[Prepared, Candidate]]:
    """Breaking statements of the pre-deploy files in a batch, on objects the batch did not
    create itself (no running code uses those), minus what an `allow` lets through."""
    created: set[tuple[str, str]] = set()
    found = []
    for item in prepared:
        migration = item.migration
        moved = False  # after the file sets search_path, an unqualified name cannot be looked up
        for statement in item.statements:
            moved = moved or sets_search_path(statement)
            made = _created(statement)
            if made:
                created.add(made)
                continue
            if migration.directives.post_deploy:
                continue
            for candidate in _statement(statement):
                allowed = candidate.rule in migration.directives.allow or candidate.rule in statement.allow
                unknown = moved and "." not in candidate.table
                if (candidate.kind, candidate.table) not in created and not allowed and not unknown:
                    found.append((item, candidate))
    return found


def breaks(
    candidate: Candidate, existing: set[tuple[str, str]], old_types: dict[tuple[str, str], ColumnType]
) -> bool:
    """Whether the candidate breaks the running release, given the (kind, name) of the objects
    that exist and the current types of the columns a type change names."""
    if (candidate.kind, candidate.table) not in existing:
        return False
    if candidate.rule != "change-column-type":
        return True
    old = old_types.get((candidate.table, candidate.column or ""))
    return old is None or candidate.new_type is None or not safe_widening(old, candidate.new_type)
