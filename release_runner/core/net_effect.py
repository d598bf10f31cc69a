"""Pure: a file's hits judged by the file's net effect on each object, not statement by
statement. A migration runs in one transaction, so the running release only ever sees the
schema before it and after it; what a statement undoes later in the same file breaks nothing.

The decisions, each from a false refusal seen on real Prisma and drizzle histories:
- A column added earlier in the batch is new: dropping, renaming, retyping or tightening it
  breaks no running code (as for tables, views, schemas and types the batch creates).
- A default dropped and set again later in the file (Prisma's enum swap) is kept; a column
  that has a default at the end of the file (set by the file, or in the catalog and not
  dropped) may be made NOT NULL: the running release's INSERTs that leave it out get it. So
  may a column NOT NULL already (detect.verdict), and NOT NULL dropped and set again is kept.
- A table or view dropped (or renamed away) and created again under its name is judged by its
  columns: it breaks only where an old column is missing (see detect.verdict); what the new
  columns' types are is not compared. A view whose columns the text cannot name (`SELECT *`,
  a UNION, an expression without an alias) is kept.
- An enum type replaced under its name (Prisma: create `T_new`, move the columns to it, rename
  `T` away, rename `T_new` to `T`, drop the old one; or a drop and a create) is one finding,
  `remove-enum-value`, on the statement that gives the name back, judged by the labels it
  removes; a column moved to it keeps its type as far as the running release can tell.
- Dropping a name the file gave by a rename (`T_old` above) is judged at the rename.
Names are compared as written, with a leading `public.` left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from release_runner.core.detect import (
    RELATION,
    TYPE,
    Hit,
    catalog_type,
    constraint_types,
    created,
    hits,
    object_name,
)
from release_runner.core.statements import Statement, node, relation_name, sets_search_path

COLUMN = "column"
_REMOVES = {"drop-table", "rename-table", "drop-view", "rename-view", "drop-type", "rename-type"}
# What hurts no running code on a column the batch added.
_ON_A_COLUMN = {
    "drop-column",
    "rename-column",
    "set-not-null",
    "drop-not-null",
    "drop-default",
    "change-column-type",
}


@dataclass(frozen=True, eq=False)
class Judged:
    """A hit, with what the release phase needs to know about where it stands in its file."""

    hit: Hit
    after_search_path: bool
    """The file set search_path before it: an unqualified name cannot be looked up."""


def key(name: str) -> str:
    """A name as the file's statements are compared: without a leading `public.`."""
    return name.removeprefix("public.")


@dataclass(frozen=True)
class _Bound:
    """A name given to an object by a statement of the file: created, or renamed to."""

    index: int
    columns: frozenset[str] | None = None
    labels: tuple[str, ...] | None = None


class _File:
    """What the whole file does to names and defaults, read before its hits are judged."""

    def __init__(self, statements: list[Statement]) -> None:
        self.statements = statements
        self.bound: dict[tuple[str, str], list[_Bound]] = {}
        self.defaults: dict[tuple[str, str], list[tuple[int, bool]]] = {}
        self.not_null_set: dict[tuple[str, str], list[int]] = {}
        self.added: dict[int, list[tuple[str, str]]] = {}
        """The columns each statement adds, as (COLUMN, "table.column")."""
        self.final: dict[str, str] = {}
        """Each type the file creates: its name at the end of the file (renames followed)."""
        for index, statement in enumerate(statements):
            kind, body = node(statement)
            made = created(statement)
            if made:
                self._bind(made, _Bound(index, _columns(kind, body), _labels(kind, body)))
                if made[0] == TYPE:
                    self.final[key(made[1])] = key(made[1])
            elif kind == "RenameStmt":
                self._rename(index, body)
            elif kind == "AlterTableStmt":
                self._alter(index, body)

    def _bind(self, name: tuple[str, str], bound: _Bound) -> None:
        self.bound.setdefault((name[0], key(name[1])), []).append(bound)

    def _rename(self, index: int, body: dict[str, Any]) -> None:
        if body.get("renameType") in ("OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW"):
            kind, old = RELATION, relation_name(body.get("relation")) or ""
        elif body.get("renameType") in ("OBJECT_TYPE", "OBJECT_DOMAIN"):
            kind, old = TYPE, object_name(body)
        else:
            return
        schema = old.rpartition(".")[0]
        new = key(f"{schema}.{body.get('newname')}" if schema else str(body.get("newname")))
        earlier = [b for b in self.bound.get((kind, key(old)), []) if b.index < index]
        carried = earlier[-1] if earlier else _Bound(index)
        self._bind((kind, new), replace(carried, index=index))
        self.final.update({made: new for made, now in self.final.items() if now == key(old)})

    def _alter(self, index: int, body: dict[str, Any]) -> None:
        """The defaults an ALTER TABLE sets or drops, the NOT NULLs it sets, the columns it adds."""
        table = key(relation_name(body.get("relation")) or "")
        for item in body.get("cmds", []):
            command = item.get("AlterTableCmd", {})
            if command.get("subtype") == "AT_ColumnDefault":
                self.defaults.setdefault((table, command.get("name")), []).append(
                    (index, bool(command.get("def")))
                )
            elif command.get("subtype") == "AT_SetNotNull":
                self.not_null_set.setdefault((table, command.get("name")), []).append(index)
            elif command.get("subtype") == "AT_AddColumn":
                definition = command.get("def", {}).get("ColumnDef", {})
                column = definition.get("colname")
                self.added.setdefault(index, []).append((COLUMN, f"{table}.{column}"))
                if "CONSTR_DEFAULT" in constraint_types(definition):
                    self.defaults.setdefault((table, column), []).append((index, True))

    def net(self, hit: Hit, index: int) -> Hit | None:
        """The hit as the file's net effect leaves it, or None where that breaks nothing."""
        name = key(hit.name or "")
        if hit.rule in _REMOVES:
            bound = self.bound.get((hit.kind, name), [])
            if any(b.index < index for b in bound):
                return None  # a name the file gave (`T_old`): renaming the old object was judged
            later = [b for b in bound if b.index > index]
            if not later:
                return hit
            again = later[0]
            if hit.kind == TYPE:
                if again.labels is None:
                    return None
                statement = self.statements[again.index]
                return Hit("remove-enum-value", statement, hit.name, TYPE, labels=again.labels)
            return replace(hit, recreated=again.columns) if again.columns is not None else None
        events = self.defaults.get((name, hit.column or ""), [])
        if hit.rule == "drop-default" and any(index < at and is_set for at, is_set in events):
            return None
        if hit.rule == "drop-not-null" and any(
            index < at for at in self.not_null_set.get((name, hit.column or ""), [])
        ):
            return None
        if hit.rule == "set-not-null" and events:
            return None if events[-1][1] else replace(hit, default_dropped=True)
        if hit.rule == "change-column-type" and hit.type_name:
            bare = hit.type_name.removesuffix("[]")
            final = self.final.get(key(bare))
            if final is not None:
                written = final + hit.type_name[len(bare) :]
                return replace(hit, new_type=catalog_type(written), type_name=written)
        return hit


def _columns(kind: str, body: dict[str, Any]) -> frozenset[str] | None:
    """The columns a CREATE TABLE or CREATE VIEW makes; None where the text cannot tell (a
    view over `*`, a UNION, an expression PostgreSQL names by rules of its own)."""
    if kind == "CreateStmt":
        elements = body.get("tableElts", [])
        return frozenset(str(e["ColumnDef"].get("colname")) for e in elements if "ColumnDef" in e)
    if kind != "ViewStmt":
        return None
    aliases = [str(a.get("String", {}).get("sval")) for a in body.get("aliases", [])]
    targets = body.get("query", {}).get("SelectStmt", {}).get("targetList")
    if targets is None:
        return None
    names = [_output_name(t.get("ResTarget", {})) for t in targets[len(aliases) :]]
    return None if None in names else frozenset(aliases + [str(n) for n in names])


def _output_name(target: dict[str, Any]) -> str | None:
    """A select list item's column name: its alias, a column's own name, a function's name."""
    if target.get("name"):
        return str(target["name"])
    value = target.get("val", {})
    fields = value.get("ColumnRef", {}).get("fields", [])
    if fields and "String" in fields[-1]:
        return str(fields[-1]["String"].get("sval"))
    function = value.get("FuncCall", {}).get("funcname", [])
    return str(function[-1]["String"].get("sval")) if function and "String" in function[-1] else None


def _labels(kind: str, body: dict[str, Any]) -> tuple[str, ...] | None:
    if kind != "CreateEnumStmt":
        return None
    return tuple(str(v.get("String", {}).get("sval")) for v in body.get("vals", []))


def file_hits(statements: list[Statement], created_before: set[tuple[str, str]]) -> Iterator[Judged]:
    """The hits of a file's statements, as its net effect leaves them, on objects not created
    earlier in the batch (`created_before`, which is updated with what this file creates:
    relations, schemas, types and columns)."""
    whole = _File(statements)
    moved = False
    seen: set[tuple[str, str | None, str | None, int]] = set()
    for index, statement in enumerate(statements):
        moved = moved or sets_search_path(statement)
        made = created(statement)
        if made:
            created_before.add(made)
            continue
        for hit in hits(statement):
            if hit.name is not None and (hit.kind, hit.name) in created_before:
                continue
            if hit.rule in _ON_A_COLUMN and (COLUMN, f"{key(hit.name or '')}.{hit.column}") in created_before:
                continue
            net = whole.net(hit, index)
            if net is None:
                continue
            # A type renamed away and the old one dropped are one re-creation: one finding.
            once = (net.rule, net.name, net.column, id(net.statement))
            if once not in seen:
                seen.add(once)
                yield Judged(net, moved)
        created_before.update(whole.added.get(index, []))
