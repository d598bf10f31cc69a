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
from dataclasses import dataclass, field
from typing import Any

from release_runner.core import detect
from release_runner.core.preflight import Prepared
from release_runner.core.statements import Statement, node, quote_ident, relation_name, sets_search_path

ROWS = "rows"  # the probe's rows violate the statement
CAST = "cast"  # the probe raises (a data exception) where the statement's cast would
_WRITES = {"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "TruncateStmt", "CopyStmt"}
_MOVES = {"RenameStmt", "AlterObjectSchemaStmt"}  # a renamed table or column: the name means other rows
_ANYTHING = {"DoStmt", "CallStmt", "CreateFunctionStmt"}  # DO and CALL run code; a function's body may follow
# ALTER TABLE commands that leave every row as it is: a later probe of the table still holds.
_KEEPS_ROWS = {
    "AT_AddConstraint",
    "AT_ValidateConstraint",
    "AT_DropConstraint",
    "AT_SetNotNull",
    "AT_DropNotNull",
    "AT_ColumnDefault",
    "AT_SetStatistics",
    "AT_SetStorage",
}


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
    referenced: str | None = None
    """The other table a foreign-key probe reads: its rows must not change before it either."""


@dataclass(frozen=True)
class Unknown:
    """A statement that is not probed, and why."""

    item: Prepared
    statement: Statement
    table: str
    reason: str


@dataclass(frozen=True)
class Constraint:
    """A CHECK (`expression`) or FOREIGN KEY (`own` columns -> `referenced` (`theirs`)) as an
    earlier NOT VALID statement of the batch or the catalog defines it: what VALIDATE checks."""

    rule: str
    expression: str = ""
    own: tuple[str, ...] = ()
    referenced: str = ""
    theirs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Known:
    """What the statements do not say and the catalog does (run/data_checks.py reads it): the
    constraints a VALIDATE CONSTRAINT names, by (table, name), and the primary key of each table
    a REFERENCES without columns names."""

    constraints: dict[tuple[str, str], Constraint] = field(default_factory=dict)
    primary_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)


def wanted(prepared: list[Prepared]) -> tuple[list[tuple[str, str]], list[str]]:
    """What plan() needs from the catalog: the (table, constraint) pairs VALIDATE CONSTRAINT
    names, and the tables REFERENCES names without columns."""
    validated: list[tuple[str, str]] = []
    referenced: list[str] = []
    for statement in (s for item in prepared for s in item.statements):
        kind, body = node(statement)
        table = relation_name(body.get("relation"))
        if kind != "AlterTableStmt" or table is None:
            continue
        for command in (c.get("AlterTableCmd", {}) for c in body.get("cmds", [])):
            constraint = command.get("def", {}).get("Constraint", {})
            if command.get("subtype") == "AT_ValidateConstraint" and command.get("name"):
                validated.append((table, str(command["name"])))
            elif constraint.get("contype") == "CONSTR_FOREIGN" and not constraint.get("pk_attrs"):
                referenced.append(relation_name(constraint.get("pktable")) or "")
    return validated, [name for name in referenced if name]


def plan(prepared: list[Prepared], known: Known | None = None) -> tuple[list[Probe], list[Unknown]]:
    """The probes of a batch, in order, and the statements that cannot be probed ahead."""
    batch = _Batch(known or Known())
    for item in prepared:
        batch.moved = False  # after the file sets search_path, an unqualified name may be another table
        for statement in item.statements:
            batch.add(item, statement)
    return batch.probes, batch.unknown


class _Batch:
    """What the pending statements so far did to the tables, as plan() walks them: tables
    created, tables whose rows may have changed (and by which statement), constraints added
    NOT VALID, and the probes and unknowns found."""

    def __init__(self, known: Known) -> None:
        self.known = known
        self.created: set[str] = set()
        self.changed: dict[str, Statement] = {}
        self.anything: Statement | None = None
        self.not_valid: dict[tuple[str, str], Constraint] = {}
        self.moved = False
        self.probes: list[Probe] = []
        self.unknown: list[Unknown] = []

    def add(self, item: Prepared, statement: Statement) -> None:
        """Judge one statement's probes against what came before it, then record what it does."""
        self.moved = self.moved or sets_search_path(statement)
        kind, body = node(statement)
        try:
            for probe in _probes(item, statement, kind, body, self):
                self._judge(probe)
        except RecursionError:  # an expression nested deeper than pglast renders back
            table = relation_name(body.get("relation")) or "?"
            self.unknown.append(Unknown(item, statement, table, "it is nested too deeply to read"))
        made = detect.created(statement)
        if made is not None and made[0] == detect.RELATION:
            self.created.add(_bare(made[1]))
        elif kind in _ANYTHING or statement.unread or kind == "?":
            # Code that runs, or a statement whose tree is not read: it may change any rows.
            self.anything = self.anything or statement
        elif kind in _WRITES or kind in _MOVES:
            self.changed.update(dict.fromkeys(map(_bare, _tables(kind, body)), statement))
        elif kind == "AlterTableStmt":
            self._alter_table(item, statement, body)

    def _judge(self, probe: Probe) -> None:
        if _bare(probe.table) in self.created:
            return  # no rows yet
        reads = [_bare(probe.table)] + ([_bare(probe.referenced)] if probe.referenced else [])
        earlier = self.anything or next((self.changed[t] for t in reads if t in self.changed), None)
        if earlier is not None:
            why = f"the statement at line {earlier.line} (or an earlier file) may change its rows first"
        elif probe.referenced and _bare(probe.referenced) in self.created:
            why = f"{probe.referenced} is created by this release"
        elif self.moved and ("." not in probe.table or "." not in (probe.referenced or ".")):
            why = "the file set search_path before it"
        else:
            self.probes.append(probe)
            return
        self.unknown.append(Unknown(probe.item, probe.statement, probe.table, why))

    def _alter_table(self, item: Prepared, statement: Statement, body: dict[str, Any]) -> None:
        """Rows change unless every command keeps them (a constraint, NOT NULL, a default);
        a constraint added NOT VALID is remembered for its VALIDATE."""
        table = relation_name(body.get("relation")) or ""
        for index, command in enumerate(c.get("AlterTableCmd", {}) for c in body.get("cmds", [])):
            if command.get("subtype") not in _KEEPS_ROWS:
                self.changed.setdefault(_bare(table), statement)  # a default filled in, a column rewritten
            constraint = command.get("def", {}).get("Constraint", {})
            if constraint.get("skip_validation") and constraint.get("conname"):
                defined = _defined(statement, index, constraint, self.known)
                if defined is not None:
                    self.not_valid[(table, str(constraint["conname"]))] = defined

    def constraint(self, table: str, name: str) -> Constraint | None:
        """The constraint a VALIDATE names: from this batch if it added it, else the catalog."""
        return self.not_valid.get((table, name)) or self.known.constraints.get((table, name))


def _tables(kind: str, body: dict[str, Any]) -> list[str]:
    """The tables a write, rename or move names: every one a TRUNCATE lists, both names of a
    rename (the old table's rows are now under the new name)."""
    if kind == "TruncateStmt":
        relations = [r.get("RangeVar") for r in body.get("relations", [])]
    else:
        relations = [body.get("relation")]
    names = [name for name in map(relation_name, relations) if name]
    if kind == "RenameStmt" and body.get("renameType") == "OBJECT_TABLE" and body.get("newname"):
        names.append(str(body["newname"]))
    return names


def _bare(table: str) -> str:
    """A table's name without its schema: what the batch's bookkeeping keys on, so that `t` and
    `public.t` (or a table moved to another schema) are one table to it. Where two schemas hold
    tables of one name, it takes a write to either as a write to both: an unknown, never a false
    refusal."""
    return table.rpartition(".")[2]


def _probes(
    item: Prepared, statement: Statement, kind: str, body: dict[str, Any], batch: _Batch
) -> Iterator[Probe]:
    table = relation_name(body.get("relation"))
    if table is None:
        return
    if kind == "IndexStmt" and body.get("unique"):
        yield from _unique_index(item, statement, table)
    elif kind == "AlterTableStmt" and body.get("objtype") == "OBJECT_TABLE":
        for index, command in enumerate(body.get("cmds", [])):
            yield from _alter(item, statement, table, index, command.get("AlterTableCmd", {}), batch)


def _alter(
    item: Prepared, statement: Statement, table: str, index: int, command: dict[str, Any], batch: _Batch
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
        yield from _constraint(item, statement, table, index, definition.get("Constraint", {}), batch.known)
    elif subtype == "AT_ValidateConstraint" and column:
        constraint = batch.constraint(table, column)
        if constraint is not None:  # a UNIQUE or a domain's: nothing to validate row by row
            yield _validated(item, statement, table, constraint)
    elif subtype == "AT_AlterColumnType" and column:
        yield _cast(item, statement, table, index, column)


def _constraint(
    item: Prepared, statement: Statement, table: str, index: int, constraint: dict[str, Any], known: Known
) -> Iterator[Probe]:
    contype = constraint.get("contype")
    keys = tuple(str(k["String"]["sval"]) for k in constraint.get("keys", []))
    if contype in ("CONSTR_PRIMARY", "CONSTR_UNIQUE") and keys and not constraint.get("indexname"):
        if contype == "CONSTR_PRIMARY":
            yield _not_null(item, statement, table, keys)
        yield _duplicates(item, statement, table, keys, [quote_ident(k) for k in keys], None, False)
    elif not constraint.get("skip_validation"):
        defined = _defined(statement, index, constraint, known)
        if defined is not None:
            yield _validated(item, statement, table, defined)


def _defined(statement: Statement, index: int, constraint: dict[str, Any], known: Known) -> Constraint | None:
    """A CHECK or FOREIGN KEY of ALTER TABLE's command `index` as a Constraint; None for other
    kinds, and for a REFERENCES without columns whose table has no primary key (yet)."""
    if constraint.get("contype") == "CONSTR_CHECK":
        return Constraint("check", _rendered(statement, lambda tree: tree.cmds[index].def_.raw_expr))
    if constraint.get("contype") != "CONSTR_FOREIGN":
        return None
    referenced = relation_name(constraint.get("pktable")) or "?"
    theirs = tuple(str(k["String"]["sval"]) for k in constraint.get("pk_attrs", []))
    theirs = theirs or known.primary_keys.get(referenced, ())
    own = tuple(str(k["String"]["sval"]) for k in constraint.get("fk_attrs", []))
    return Constraint("foreign-key", own=own, referenced=referenced, theirs=theirs) if theirs else None


def _validated(item: Prepared, statement: Statement, table: str, constraint: Constraint) -> Probe:
    """The probe of a CHECK or FOREIGN KEY that is validated: the rows that break it."""
    if constraint.rule == "check":
        query = f"SELECT 1 FROM {_sql(table)} WHERE NOT ({constraint.expression})"
        fix = "fix or delete the rows, or add the constraint NOT VALID and VALIDATE it once they are fixed"
        return Probe("check", item, statement, table, (), query, fix=fix)
    return _orphans(item, statement, table, constraint)


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


def _orphans(item: Prepared, statement: Statement, table: str, constraint: Constraint) -> Probe:
    """Rows whose key (all of it present: MATCH SIMPLE) has no match in the referenced table."""
    present = " AND ".join(f"t.{quote_ident(c)} IS NOT NULL" for c in constraint.own)
    pairs = zip(constraint.own, constraint.theirs, strict=False)
    match = " AND ".join(f"r.{quote_ident(b)} = t.{quote_ident(a)}" for a, b in pairs)
    referenced = constraint.referenced
    missing = f"NOT EXISTS (SELECT 1 FROM {_sql(referenced)} r WHERE {match})"
    query = f"SELECT 1 FROM {_sql(table)} t WHERE {present} AND {missing}"
    fix = (
        f"delete or fix the rows with no match in {referenced}, or add the key NOT VALID and "
        "VALIDATE it later"
    )
    return Probe("foreign-key", item, statement, table, constraint.own, query, fix=fix, referenced=referenced)


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
