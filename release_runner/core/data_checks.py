"""Pure: the data checks a release needs before it applies anything. For every pending statement
that can fail on rows a table already has (NOT NULL, unique, CHECK, foreign key, a type change
whose cast fails), one read-only probe: a query that finds violating rows. run/data_checks.py
runs them, each bounded by LIMIT and all time-boxed, and turns what they find into refusals.

Never a false refusal: a table created by the release has no rows to check; where an earlier
pending statement (in the same file or an earlier one) may change the table's rows, or a DO
block or a CALL may change anything, the statement is not probed but reported unknown (the
migration's own transaction is the check then). Expressions are taken from the statement
itself (pglast renders them back to SQL)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from release_runner.core import detect
from release_runner.core.preflight import Prepared
from release_runner.core.statements import Statement, node, quote_ident, relation_name, sets_search_path

ROWS = "rows"  # the probe's rows violate the statement
CAST = "cast"  # the probe raises (a data exception) where the statement's cast would
_WRITES = {"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "TruncateStmt", "CopyStmt"}
_ANYTHING = {"DoStmt", "CallStmt", "CreateFunctionStmt"}  # DO and CALL run code; a function's body may follow


@dataclass(frozen=True)
class Probe:
    """One check of one statement against the rows its table has now."""

    rule: str
    """`not-null`, `unique`, `check`, `foreign-key` or `cast`."""
    item: Prepared
    statement: Statement
    table: str
    columns: tuple[str, ...]
    query: str
    """A SELECT of the violating rows (ROWS), or one that raises where the cast would (CAST)."""
    kind: str = ROWS
    fix: str = ""


@dataclass(frozen=True)
class Unknown:
    """A statement that is not probed, and why."""

    item: Prepared
    statement: Statement
    table: str
    reason: str


def plan(prepared: list[Prepared]) -> tuple[list[Probe], list[Unknown]]:
    """The probes of a batch, in order, and the statements that cannot be probed ahead."""
    created: set[str] = set()
    changed: dict[str, Statement] = {}
    anything: Statement | None = None
    probes: list[Probe] = []
    unknown: list[Unknown] = []
    for item in prepared:
        moved = False  # after the file sets search_path, an unqualified name may be another table
        for statement in item.statements:
            moved = moved or sets_search_path(statement)
            kind, body = node(statement)
            for probe in _probes(item, statement, kind, body):
                if probe.table in created:
                    continue
                earlier = anything or changed.get(probe.table)
                if earlier is not None:
                    why = (
                        f"the statement at line {earlier.line} (or an earlier file) may change its rows first"
                    )
                    unknown.append(Unknown(item, statement, probe.table, why))
                elif moved and "." not in probe.table:
                    unknown.append(
                        Unknown(item, statement, probe.table, "the file set search_path before it")
                    )
                else:
                    probes.append(probe)
            made = detect.created(statement)
            if made is not None and made[0] == detect.RELATION:
                created.add(made[1])
            elif kind in _WRITES:
                changed.update(dict.fromkeys(_tables(kind, body), statement))
            elif kind in _ANYTHING:
                anything = anything or statement
            elif kind == "AlterTableStmt":
                for table in _tables(kind, body):  # a default filled in, a column rewritten
                    changed.setdefault(table, statement)
    return probes, unknown


def _tables(kind: str, body: dict[str, Any]) -> list[str]:
    """The tables a write or ALTER TABLE names: every one a TRUNCATE lists."""
    relations = (
        [r.get("RangeVar") for r in body.get("relations", [])]
        if kind == "TruncateStmt"
        else [body.get("relation")]
    )
    return [name for name in map(relation_name, relations) if name]


def _probes(item: Prepared, statement: Statement, kind: str, body: dict[str, Any]) -> Iterator[Probe]:
    table = relation_name(body.get("relation"))
    if table is None:
        return
    if kind == "IndexStmt" and body.get("unique"):
        yield from _unique_index(item, statement, table)
    elif kind == "AlterTableStmt" and body.get("objtype") == "OBJECT_TABLE":
        for index, command in enumerate(body.get("cmds", [])):
            yield from _alter(item, statement, table, index, command.get("AlterTableCmd", {}))


def _alter(
    item: Prepared, statement: Statement, table: str, index: int, command: dict[str, Any]
) -> Iterator[Probe]:
    subtype, column = command.get("subtype"), command.get("name")
    definition = command.get("def", {})
    if subtype == "AT_SetNotNull" and column:
        yield _not_null(item, statement, table, (column,))
    elif subtype == "AT_AddColumn" and detect.required_without_default(definition.get("ColumnDef", {})):
        name = str(definition["ColumnDef"].get("colname"))
        query = f"SELECT 1 FROM {_sql(table)}"
        fix = "add it with a DEFAULT, or nullable; backfill; then SET NOT NULL"
        yield Probe("not-null", item, statement, table, (name,), query, fix=fix)
    elif subtype == "AT_AddConstraint":
        yield from _constraint(item, statement, table, index, definition.get("Constraint", {}))
    elif subtype == "AT_AlterColumnType" and column:
        yield _cast(item, statement, table, index, column)


def _constraint(
    item: Prepared, statement: Statement, table: str, index: int, constraint: dict[str, Any]
) -> Iterator[Probe]:
    contype = constraint.get("contype")
    keys = tuple(str(k["String"]["sval"]) for k in constraint.get("keys", []))
    if contype in ("CONSTR_PRIMARY", "CONSTR_UNIQUE") and keys and not constraint.get("indexname"):
        if contype == "CONSTR_PRIMARY":
            yield _not_null(item, statement, table, keys)
        yield _duplicates(item, statement, table, keys, [quote_ident(k) for k in keys], None, False)
    elif contype == "CONSTR_CHECK" and not constraint.get("skip_validation"):
        expression = _rendered(statement, lambda tree: tree.cmds[index].def_.raw_expr)
        query = f"SELECT 1 FROM {_sql(table)} WHERE NOT ({expression})"
        fix = "fix or delete the rows, or add the constraint NOT VALID and VALIDATE it once they are fixed"
        yield Probe("check", item, statement, table, (), query, fix=fix)
    elif contype == "CONSTR_FOREIGN" and not constraint.get("skip_validation") and constraint.get("pk_attrs"):
        # REFERENCES t with no columns means t's primary key: not probed (the catalog would say which)
        yield _orphans(item, statement, table, constraint)


def _not_null(item: Prepared, statement: Statement, table: str, columns: tuple[str, ...]) -> Probe:
    nulls = " OR ".join(f"{quote_ident(c)} IS NULL" for c in columns)
    fix = "backfill the NULLs first (an UPDATE in an earlier migration), or give them a default"
    query = f"SELECT 1 FROM {_sql(table)} WHERE {nulls}"
    return Probe("not-null", item, statement, table, columns, query, fix=fix)


def _duplicates(
    item: Prepared,
    statement: Statement,
    table: str,
    columns: tuple[str, ...],
    expressions: list[str],
    predicate: str | None,
    nulls_equal: bool,
) -> Probe:
    """Rows that share a key; with NULLS DISTINCT (the default) a key with a NULL never does."""
    conditions = [f"({predicate})"] if predicate else []
    if not nulls_equal:
        conditions += [f"({e}) IS NOT NULL" for e in expressions]
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    key = ", ".join(expressions)
    query = f"SELECT 1 FROM {_sql(table)}{where} GROUP BY {key} HAVING count(*) > 1"
    fix = "deduplicate the rows first (a DELETE or UPDATE in an earlier migration)"
    return Probe("unique", item, statement, table, columns, query, fix=fix)


def _unique_index(item: Prepared, statement: Statement, table: str) -> Iterator[Probe]:
    tree = _tree(statement)
    expressions = [_render(p.expr) if p.expr is not None else quote_ident(p.name) for p in tree.indexParams]
    columns = tuple(p.name or _render(p.expr) for p in tree.indexParams)
    predicate = _render(tree.whereClause) if tree.whereClause is not None else None
    yield _duplicates(item, statement, table, columns, expressions, predicate, bool(tree.nulls_not_distinct))


def _orphans(item: Prepared, statement: Statement, table: str, constraint: dict[str, Any]) -> Probe:
    own = [str(k["String"]["sval"]) for k in constraint.get("fk_attrs", [])]
    theirs = [str(k["String"]["sval"]) for k in constraint.get("pk_attrs", [])]
    referenced = relation_name(constraint.get("pktable")) or "?"
    present = " AND ".join(f"t.{quote_ident(c)} IS NOT NULL" for c in own)
    pairs = zip(own, theirs, strict=False)
    match = " AND ".join(f"r.{quote_ident(b)} = t.{quote_ident(a)}" for a, b in pairs)
    missing = f"NOT EXISTS (SELECT 1 FROM {_sql(referenced)} r WHERE {match})"
    query = f"SELECT 1 FROM {_sql(table)} t WHERE {present} AND {missing}"
    fix = (
        f"delete or fix the rows with no match in {referenced}, or add the key NOT VALID and "
        "VALIDATE it later"
    )
    return Probe("foreign-key", item, statement, table, tuple(own), query, fix=fix)


def _cast(item: Prepared, statement: Statement, table: str, index: int, column: str) -> Probe:
    definition = _tree(statement).cmds[index].def_
    using = _render(definition.raw_default) if definition.raw_default is not None else quote_ident(column)
    target = _render(definition.typeName)
    query = f"SELECT count(({using})::{target}) FROM {_sql(table)}"
    fix = "fix the values that do not convert first, or convert with a USING expression that handles them"
    return Probe("cast", item, statement, table, (column,), query, CAST, fix)


def _tree(statement: Statement) -> Any:
    """The statement as pglast's AST, to render parts of it back to SQL."""
    from pglast import parse_sql  # loaded with the parser, which statements.py loads already

    return parse_sql(statement.text)[0].stmt


def _rendered(statement: Statement, part: Any) -> str:
    return _render(part(_tree(statement)))


def _render(part: Any) -> str:
    from pglast.stream import RawStream

    return str(RawStream()(part))


def _sql(table: str) -> str:
    """A name as written (dotted, case already folded by the parser), quoted part by part."""
    return ".".join(quote_ident(part) for part in table.split("."))
