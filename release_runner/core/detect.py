"""Pure: one walker of parse trees for every rule of rules.py that a single statement shows (a
heavy lock, data loss, a break of the running release). It yields `Hit`s: the rule, the
statement and the object it acts on. Preflight turns the hits of the rules it lints into
findings; the release phase keeps those on objects that existed before the run (the catalog
says which, see run/gate.py) and refuses them.

Which objects count as new is decided here too: what a batch creates (tables, views, schemas,
types) no running code uses yet, so the hits on it are dropped in both phases. After a file
sets search_path an unqualified name may mean another object than where the runner would look,
so the release phase leaves those to the server.

What counts as a safe widening of a column's type (not a break): `varchar(n)` to a longer
`varchar`, `varchar` or `text`; `text` to `varchar`; `numeric(p,s)` to more precision with the
same scale, or to `numeric`; `varbit(n)` to a longer one; `smallint` to `integer`. `integer` to
`bigint` is not: drivers such as node-postgres return `bigint` as a string, which the old code
does not expect. A `USING` clause is a conversion, never a widening.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from release_runner.core.statements import Statement, dotted_name, node, relation_name

# What a hit's name is: its existence is read from the catalog by kind.
RELATION, SCHEMA, TYPE = "relation", "schema", "type"
_TABLES = ("OBJECT_TABLE", "OBJECT_FOREIGN_TABLE")
_VIEWS = ("OBJECT_VIEW", "OBJECT_MATVIEW")
_TYPES = ("OBJECT_TYPE", "OBJECT_DOMAIN")
# Functions whose default forces a table rewrite when a column is added (not now(): stable).
_VOLATILE_DEFAULTS = {
    "random",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "txid_current",
}
# A type as the catalog keeps it: typname and atttypmod.
ColumnType = tuple[str, int]


@dataclass(frozen=True, eq=False)
class Hit:
    """A statement a rule names, and the object it acts on: a table's name, or a view's,
    schema's or type's (see `kind`); None where the statement names none."""

    rule: str
    statement: Statement
    name: str | None
    kind: str = RELATION
    column: str | None = None
    new_type: ColumnType | None = None
    """A type change's target where a widening can be judged (no USING), as the catalog keeps it."""
    type_name: str | None = None
    """A type change's target as written, dotted, `[]` after an array's."""
    recreated: frozenset[str] | None = None
    """A table dropped (or renamed away) that the same file creates again: the new columns."""
    labels: tuple[str, ...] | None = None
    """An enum type the file re-creates (remove-enum-value): its labels afterwards."""
    default_dropped: bool = False
    """SET NOT NULL on a column whose default the same file drops."""


def constraint_types(column_def: dict[str, Any]) -> set[str]:
    """The kinds of a ColumnDef's own constraints (`CONSTR_DEFAULT`, `CONSTR_NOTNULL`...)."""
    return {str(c.get("Constraint", {}).get("contype")) for c in column_def.get("constraints", [])}


def required_without_default(column_def: dict[str, Any]) -> bool:
    """A column added NOT NULL with nothing to fill it: no DEFAULT, identity or generation."""
    contypes = constraint_types(column_def)
    return "CONSTR_NOTNULL" in contypes and not contypes & {
        "CONSTR_DEFAULT",
        "CONSTR_IDENTITY",
        "CONSTR_GENERATED",
    }


def _volatile_default(column_def: dict[str, Any]) -> bool:
    for item in column_def.get("constraints", []):
        constraint = item.get("Constraint", {})
        if constraint.get("contype") == "CONSTR_DEFAULT":
            call = constraint.get("raw_expr", {}).get("FuncCall")
            if call:
                name = call["funcname"][-1]["String"]["sval"]
                return str(name).lower() in _VOLATILE_DEFAULTS
    return False


def type_written(type_name: dict[str, Any]) -> str:
    """A TypeName as written, dotted, with `[]` after an array's."""
    return dotted_name(type_name.get("names", [])) + ("[]" if type_name.get("arrayBounds") else "")


def catalog_type(written: str) -> ColumnType:
    """typname of a type named as written (an array's is its element's with `_` before), with
    no typmod: how the catalog keeps a type the file defines."""
    name = written.removesuffix("[]").rpartition(".")[2]
    return ("_" + name if written.endswith("[]") else name), -1


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
    if old == new:
        return True
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


def _add_column(table: str, statement: Statement, column: dict[str, Any]) -> Iterator[Hit]:
    if required_without_default(column):
        yield Hit("add-column-not-null-without-default", statement, table, column=column.get("colname"))
    if _volatile_default(column):
        yield Hit("volatile-default-rewrite", statement, table, column=column.get("colname"))


def _add_constraint(table: str, statement: Statement, constraint: dict[str, Any]) -> Iterator[Hit]:
    contype = constraint.get("contype")
    if contype == "CONSTR_FOREIGN" and not constraint.get("skip_validation"):
        yield Hit("add-foreign-key-validated", statement, table)
    elif contype in ("CONSTR_UNIQUE", "CONSTR_PRIMARY") and not constraint.get("indexname"):
        yield Hit("add-unique-constraint", statement, table)


def _alter_table(statement: Statement, body: dict[str, Any]) -> Iterator[Hit]:
    table = relation_name(body.get("relation"))
    if not table or body.get("objtype") not in _TABLES:
        return
    for item in body.get("cmds", []):
        command = item.get("AlterTableCmd", {})
        subtype, column = command.get("subtype"), command.get("name")
        definition = command.get("def", {})
        if subtype == "AT_AddColumn":
            yield from _add_column(table, statement, definition.get("ColumnDef", {}))
        elif subtype == "AT_AddConstraint":
            yield from _add_constraint(table, statement, definition.get("Constraint", {}))
        elif subtype == "AT_DropColumn":
            yield Hit("drop-column", statement, table, column=column)
        elif subtype == "AT_SetNotNull":
            yield Hit("set-not-null", statement, table, column=column)
        elif subtype == "AT_DropNotNull":
            yield Hit("drop-not-null", statement, table, column=column)
        elif subtype == "AT_ColumnDefault" and not definition:
            yield Hit("drop-default", statement, table, column=column)
        elif subtype == "AT_AlterColumnType":
            column_def = definition.get("ColumnDef", {})
            type_name = column_def.get("typeName", {})
            new_type = None if column_def.get("raw_default") else _type(type_name)
            yield Hit(
                "change-column-type",
                statement,
                table,
                column=column,
                new_type=new_type,
                type_name=type_written(type_name),
            )


def _drop(statement: Statement, body: dict[str, Any]) -> Iterator[Hit]:
    remove = str(body.get("removeType"))
    for item in body.get("objects", []):
        if remove in _TABLES or remove in _VIEWS:
            rule = "drop-table" if remove in _TABLES else "drop-view"
            yield Hit(rule, statement, dotted_name(item.get("List", {}).get("items", [])))
        elif remove == "OBJECT_SCHEMA":
            yield Hit("drop-schema", statement, str(item.get("String", {}).get("sval")), SCHEMA)
        elif remove in _TYPES:
            yield Hit("drop-type", statement, dotted_name(item.get("TypeName", {}).get("names", [])), TYPE)


def object_name(body: dict[str, Any]) -> str:
    """The dotted name of a statement's `object` (a type's, in RENAME and SET SCHEMA)."""
    return dotted_name(body.get("object", {}).get("List", {}).get("items", []))


def _rename(statement: Statement, body: dict[str, Any]) -> Iterator[Hit]:
    table = relation_name(body.get("relation"))
    rename = body.get("renameType")
    if table and (rename in _TABLES or rename in _VIEWS):
        yield Hit("rename-table" if rename in _TABLES else "rename-view", statement, table)
    elif table and rename == "OBJECT_COLUMN":
        yield Hit("rename-column", statement, table, column=body.get("subname"))
    elif rename == "OBJECT_SCHEMA":
        yield Hit("rename-schema", statement, str(body.get("subname")), SCHEMA)
    elif rename in _TYPES:
        yield Hit(
            "rename-type",
            statement,
            object_name(body),
            TYPE,
        )


def _set_schema(statement: Statement, body: dict[str, Any]) -> Iterator[Hit]:
    table = relation_name(body.get("relation"))
    if table and body.get("objectType") in (*_TABLES, *_VIEWS):
        yield Hit("set-schema", statement, table)
    elif body.get("objectType") in _TYPES:
        yield Hit(
            "set-schema",
            statement,
            object_name(body),
            TYPE,
        )


def _index(statement: Statement, body: dict[str, Any]) -> Iterator[Hit]:
    table = relation_name(body.get("relation"))
    if table and not body.get("concurrent"):
        yield Hit("create-index-not-concurrently", statement, table)


def _truncate(statement: Statement, body: dict[str, Any]) -> Iterator[Hit]:
    for item in body.get("relations", []):
        yield Hit("truncate", statement, relation_name(item.get("RangeVar")))


def _enum_value(statement: Statement, body: dict[str, Any]) -> Iterator[Hit]:
    name = dotted_name(body.get("typeName", []))
    if body.get("oldVal"):
        yield Hit("rename-enum-value", statement, name, TYPE)
    elif body.get("newVal") is not None:
        yield Hit("add-enum-value", statement, name, TYPE)


# What a DO block's code may do to the schema that the rules cannot read (its body is a string).
_DO_CHANGES = re.compile(
    r"\b(?:DROP\s+(?:COLUMN|TABLE|VIEW|TYPE)|RENAME\s+(?:COLUMN\s+|TO\b))", re.IGNORECASE
)


def _do_block(statement: Statement, body: dict[str, Any]) -> Iterator[Hit]:
    if _DO_CHANGES.search(statement.text):
        yield Hit("do-block-changes-schema", statement, None)


_DETECTORS: dict[str, Callable[[Statement, dict[str, Any]], Iterator[Hit]]] = {
    "AlterTableStmt": _alter_table,
    "DropStmt": _drop,
    "RenameStmt": _rename,
    "AlterObjectSchemaStmt": _set_schema,
    "IndexStmt": _index,
    "TruncateStmt": _truncate,
    "AlterEnumStmt": _enum_value,
    "DoStmt": _do_block,
}


def hits(statement: Statement) -> Iterator[Hit]:
    """Every rule hit of one statement."""
    kind, body = node(statement)
    detector = _DETECTORS.get(kind)
    return detector(statement, body) if detector else iter(())


def created(statement: Statement) -> tuple[str, str] | None:
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


@dataclass(frozen=True)
class Column:
    """A column as the catalog has it before the run."""

    type: ColumnType
    has_default: bool = False
    not_null: bool = False


@dataclass(frozen=True)
class Before:
    """What the catalog says before the run, for the hits the release phase judges: the
    (kind, name) of the objects that exist; each column of the tables the hits name; each enum
    type's labels."""

    existing: set[tuple[str, str]]
    columns: dict[str, dict[str, Column]] = field(default_factory=dict)
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)


def verdict(hit: Hit, before: Before) -> str | None:
    """None when the hit does not break the running release; otherwise what breaks, to add to
    the rule's message ("" where the rule's message says it all)."""
    if (hit.kind, hit.name) not in before.existing:
        return None
    columns = before.columns.get(hit.name or "", {})
    column = columns.get(hit.column or "")
    if hit.rule == "change-column-type" and column and hit.new_type:
        return None if safe_widening(column.type, hit.new_type) else ""
    if (
        hit.rule == "set-not-null"
        and column
        and (column.not_null or (column.has_default and not hit.default_dropped))
    ):
        # NOT NULL already (the file may drop and set it again), or the running release's
        # INSERTs that leave the column out get the default
        return None
    if hit.recreated is not None:
        missing = sorted(set(columns) - hit.recreated)
        return f"; it is created again without column(s) {', '.join(missing)}" if missing else None
    if hit.labels is not None:
        removed = [label for label in before.labels.get(hit.name or "", ()) if label not in hit.labels]
        return f"; labels removed: {', '.join(removed)}" if removed else None
    return ""
