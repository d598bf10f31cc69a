"""Pure: lock-ahead. Before the first statement of a transactional migration, take every table
lock its statements will take, read from their parse trees, without ever holding one lock while
waiting long for another.

Why: `lock_timeout` bounds one statement's wait, not the app's. `ALTER TABLE a …; ALTER TABLE b …`
holds `a`'s ACCESS EXCLUSIVE lock while it waits for `b`, and every query on `a` queues behind it
for the whole wait. Here all locks are taken in short rounds inside one savepoint (a PL/pgSQL
block with an exception handler): when any table is busy, the round's locks are released at
once, the app's queued queries run, and the round is tried again, longer each time (100 ms
doubling to at most 1 s, never beyond lock_timeout), until the migration's lock_timeout is spent.
Then the server's own `lock_not_available` error (55P03) ends the attempt as a plain lock
timeout would, and the runner's retries apply. A query on a table the migration touches waits at
most one round, not the sum of every wait.

Modes are the ones PostgreSQL 15 takes for each statement (tests/db/test_lock_ahead.py checks them
against pg_locks): never stronger, so a VALIDATE CONSTRAINT or CREATE INDEX does not start
blocking reads; never weaker, so no statement waits again to upgrade. What the parse tree cannot
show (tables a function or trigger touches, row locks an UPDATE waits for) is left to the
statement's own lock_timeout. Tables that do not exist yet, and relations that are not tables,
are skipped on the server. A file that opens with `SET TRANSACTION` gets no lock-ahead, since
nothing may run in its transaction before that statement; after a file sets search_path, only
schema-qualified names are taken ahead (the others would be looked up where the block runs)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from release_runner.core.statements import (
    Statement,
    name_parts,
    node,
    quote_ident,
    relation_parts,
    sets_search_path,
)


class LockMode(StrEnum):
    """PostgreSQL's table lock modes, weakest first; the value is how LOCK TABLE spells it."""

    ACCESS_SHARE = "ACCESS SHARE"
    ROW_SHARE = "ROW SHARE"
    ROW_EXCLUSIVE = "ROW EXCLUSIVE"
    SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
    SHARE = "SHARE"
    SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
    EXCLUSIVE = "EXCLUSIVE"
    ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"


ROW_EXCLUSIVE = LockMode.ROW_EXCLUSIVE
SHARE_UPDATE_EXCLUSIVE = LockMode.SHARE_UPDATE_EXCLUSIVE
SHARE = LockMode.SHARE
SHARE_ROW_EXCLUSIVE = LockMode.SHARE_ROW_EXCLUSIVE
ACCESS_EXCLUSIVE = LockMode.ACCESS_EXCLUSIVE
_MODES = list(LockMode)
# PostgreSQL's table of conflicting lock modes, row by row in the order above: X conflicts.
_MATRIX = [".......X", "......XX", "....XXXX", "...XXXXX", "..XX.XXX", "..XXXXXX", ".XXXXXXX", "XXXXXXXX"]
_CONFLICTS = {
    mode: {other for other, mark in zip(_MODES, row, strict=True) if mark == "X"}
    for mode, row in zip(_MODES, _MATRIX, strict=True)
}
# ALTER TABLE subcommands that take less than ACCESS EXCLUSIVE (AlterTableGetLockLevel).
_ALTER_SHARE_UPDATE_EXCLUSIVE = {
    "AT_ValidateConstraint",
    "AT_SetStatistics",
    "AT_ClusterOn",
    "AT_DropCluster",
    "AT_SetOptions",
    "AT_ResetOptions",
    "AT_SetRelOptions",
    "AT_ResetRelOptions",
    "AT_AttachPartition",
}
_ALTER_SHARE_ROW_EXCLUSIVE = {
    "AT_EnableTrig",
    "AT_EnableAlwaysTrig",
    "AT_EnableReplicaTrig",
    "AT_EnableTrigAll",
    "AT_EnableTrigUser",
    "AT_DisableTrig",
    "AT_DisableTrigAll",
    "AT_DisableTrigUser",
}
_TABLES = ("OBJECT_TABLE", "OBJECT_FOREIGN_TABLE")
_ON_TABLE = {"OBJECT_TRIGGER", "OBJECT_POLICY", "OBJECT_RULE"}
_DML = {"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"}
FIRST_ROUND_MS = 100
LONGEST_ROUND_MS = 1000
_NO_LIMIT_MS = 10 * 365 * 86_400_000  # lock_timeout 0 waits without limit; ten years will do


@dataclass(frozen=True)
class Lock:
    """A table lock to take, in `mode`, on the tables that `name` (as written) leads to by
    `via`: "table", the table itself; "index", the table of that index; "references", the
    tables its foreign keys reference (with "references-column" or "references-constraint",
    only the foreign keys on the column, or the constraint, named `detail`). Dropping a table,
    a foreign-key column or a foreign key takes ACCESS EXCLUSIVE on the table it references."""

    name: tuple[str, ...]
    mode: LockMode
    via: str = "table"
    detail: str | None = None
    only: bool = False
    """Not the partitions too: ATTACH and DETACH PARTITION lock the parent alone, as does a
    statement on `ONLY` a table."""

    @property
    def referencing_column(self) -> tuple[str, str] | None:
        """(table, column) of a "references-column" lock: the lock is needed only where that
        column has a foreign key. None for every other lock."""
        if self.via != "references-column":
            return None
        return ".".join(self.name), self.detail or ""

    def describe(self) -> str:
        name = ".".join(self.name)
        where = {
            "table": name,
            "index": f"the table of index {name}",
            "references": f"the tables {name} references",
            "references-column": f"the table {name}.{self.detail} references, if it has a foreign key",
            "references-constraint": f"the table {name}'s {self.detail} references",
        }[self.via]
        return f"{where} ({self.mode})"


def _foreign_keys(elements: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Foreign-key constraints among a CREATE TABLE's elements, column constraints included."""
    for element in elements:
        constraints = element.get("ColumnDef", {}).get("constraints", []) or [element]
        for item in constraints:
            constraint = item.get("Constraint", {})
            if constraint.get("contype") == "CONSTR_FOREIGN":
                yield constraint


def _alter_table(body: dict[str, Any]) -> Iterator[Lock | None]:
    table = relation_parts(body.get("relation"))
    if table is None:
        return
    only = not body["relation"].get("inh")  # the parse tree leaves false out
    for item in body.get("cmds", []):
        command = item.get("AlterTableCmd", {})
        subtype = command.get("subtype")
        definition = command.get("def", {})
        constraint = definition.get("Constraint", {})
        partition = relation_parts(definition.get("PartitionCmd", {}).get("name"))
        alone = only or bool(partition)  # ATTACH/DETACH lock the parent, not its partitions
        if subtype in _ALTER_SHARE_UPDATE_EXCLUSIVE:
            yield Lock(table, SHARE_UPDATE_EXCLUSIVE, only=alone)
        elif subtype in _ALTER_SHARE_ROW_EXCLUSIVE:
            yield Lock(table, SHARE_ROW_EXCLUSIVE, only=alone)
        elif subtype == "AT_AddConstraint" and constraint.get("contype") == "CONSTR_FOREIGN":
            yield Lock(table, SHARE_ROW_EXCLUSIVE, only=alone)
            yield _lock(relation_parts(constraint.get("pktable")), SHARE_ROW_EXCLUSIVE)
        else:
            yield Lock(table, ACCESS_EXCLUSIVE, only=alone)
        if subtype == "AT_AddColumn":  # an inline REFERENCES
            for foreign in _foreign_keys([definition]):
                yield _lock(relation_parts(foreign.get("pktable")), SHARE_ROW_EXCLUSIVE)
        elif subtype == "AT_DropColumn" and command.get("name"):
            yield Lock(table, ACCESS_EXCLUSIVE, "references-column", str(command["name"]))
        elif subtype == "AT_DropConstraint" and command.get("name"):
            yield Lock(table, ACCESS_EXCLUSIVE, "references-constraint", str(command["name"]))
        if partition and subtype in ("AT_AttachPartition", "AT_DetachPartition"):
            yield Lock(partition, ACCESS_EXCLUSIVE)


def _lock(name: tuple[str, ...] | None, mode: LockMode) -> Lock | None:
    return Lock(name, mode) if name else None


def _statement_locks(statement: Statement) -> Iterator[Lock | None]:
    kind, body = node(statement)
    relation = relation_parts(body.get("relation"))
    if kind == "AlterTableStmt" and body.get("objtype") in _TABLES:
        yield from _alter_table(body)
    elif kind == "IndexStmt" and not body.get("concurrent"):
        yield _lock(relation, SHARE)
    elif kind == "CreateTrigStmt":
        yield _lock(relation, SHARE_ROW_EXCLUSIVE)
    elif kind == "CreateStmt":
        for constraint in _foreign_keys(body.get("tableElts", [])):
            yield _lock(relation_parts(constraint.get("pktable")), SHARE_ROW_EXCLUSIVE)
        if body.get("partbound"):
            for parent in body.get("inhRelations", []):
                name = relation_parts(parent.get("RangeVar"))
                if name:  # the parent alone, not its other partitions
                    yield Lock(name, ACCESS_EXCLUSIVE, only=True)
    elif kind == "RenameStmt" and (
        body.get("renameType") in _TABLES
        or body.get("relationType") in _TABLES
        or body.get("renameType") in _ON_TABLE | {"OBJECT_TABCONSTRAINT"}
    ):
        yield _lock(relation, ACCESS_EXCLUSIVE)
    elif kind == "DropStmt" and not body.get("concurrent"):
        objects = [name_parts(item.get("List", {}).get("items", [])) for item in body.get("objects", [])]
        remove = body.get("removeType")
        for name in objects:
            if remove in _TABLES:
                yield Lock(name, ACCESS_EXCLUSIVE)
                yield Lock(name, ACCESS_EXCLUSIVE, "references")
            elif remove == "OBJECT_INDEX":
                yield Lock(name, ACCESS_EXCLUSIVE, "index")
            elif remove in _ON_TABLE and len(name) > 1:
                yield Lock(name[:-1], ACCESS_EXCLUSIVE)
    elif kind == "TruncateStmt":
        for item in body.get("relations", []):
            yield _lock(relation_parts(item.get("RangeVar")), ACCESS_EXCLUSIVE)
    elif kind in _DML:
        yield _lock(relation, ROW_EXCLUSIVE)
    elif kind in ("CreatePolicyStmt", "AlterPolicyStmt"):
        yield _lock(relation_parts(body.get("table")), ACCESS_EXCLUSIVE)
    elif kind == "RuleStmt" or (kind == "AlterObjectSchemaStmt" and body.get("objectType") in _TABLES):
        yield _lock(relation, ACCESS_EXCLUSIVE)
    elif kind == "ReindexStmt" and body.get("kind") == "REINDEX_OBJECT_TABLE":
        yield _lock(relation, SHARE)


def _sets_transaction(statement: Statement) -> bool:
    kind, body = node(statement)
    return kind == "VariableSetStmt" and body.get("name") == "TRANSACTION"


def needed(statements: list[Statement]) -> list[Lock]:
    """The table locks a transaction of these statements takes, in the order first needed; a
    mode is left out where another one it needs on that table already excludes everything it
    would (ACCESS EXCLUSIVE covers all)."""
    if statements and _sets_transaction(statements[0]):
        # SET TRANSACTION must come before any query of the transaction, and the lock-ahead
        # block is one: such a file takes its locks as its statements go.
        return []
    wanted: dict[tuple[tuple[str, ...], str, str | None, bool], list[LockMode]] = {}
    moved = False  # the file changed search_path: unqualified names no longer mean what they do now
    for statement in statements:
        moved = moved or sets_search_path(statement)
        for lock in _statement_locks(statement):
            if lock is not None and not (moved and len(lock.name) == 1):
                wanted.setdefault((lock.name, lock.via, lock.detail, lock.only), []).append(lock.mode)
    locks = []
    for (name, via, detail, only), modes in wanted.items():
        distinct = list(dict.fromkeys(modes))
        for mode in distinct:
            if not any(other != mode and _CONFLICTS[mode] <= _CONFLICTS[other] for other in distinct):
                locks.append(Lock(name, mode, via, detail, only))
    return locks


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quoted(name: tuple[str, ...]) -> str:
    """The name as quoted identifiers, for to_regclass."""
    return ".".join(quote_ident(part) for part in name)


def block(locks: list[Lock], lock_timeout_ms: int) -> str | None:
    """The DO block that takes `locks` in rounds within `lock_timeout_ms` (0: no limit, as for
    lock_timeout), then leaves lock_timeout at that value for the statements; None when there
    is nothing to lock. Kept short: pg_stat_activity shows the first kilobyte of it."""
    if not locks:
        return None
    budget_ms = lock_timeout_ms if lock_timeout_ms > 0 else _NO_LIMIT_MS

    def array(values: list[str | None]) -> str:
        return "ARRAY[" + ", ".join("NULL" if v is None else _literal(v) for v in values) + "]::text[]"

    names = array([_quoted(lock.name) for lock in locks])
    modes = array([lock.mode for lock in locks])
    vias = array([lock.via for lock in locks])
    details = array([lock.detail for lock in locks])
    only = array(["ONLY " if lock.only else "" for lock in locks])
    return f"""DO $release_runner_lock_ahead$ DECLARE
 names text[] := {names}; modes text[] := {modes};
 vias text[] := {vias}; details text[] := {details}; prefixes text[] := {only};
 budget_end timestamptz := clock_timestamp() + interval '{budget_ms} ms';
 round_ms bigint := {min(FIRST_ROUND_MS, budget_ms)}; round_end timestamptz; target regclass;
BEGIN LOOP
 round_end := least(clock_timestamp() + round_ms * interval '1 ms', budget_end);
 BEGIN
  FOR i IN 1 .. array_length(names, 1) LOOP
   FOR target IN
    SELECT to_regclass(names[i]) WHERE vias[i] = 'table'
    UNION ALL SELECT x.indrelid::regclass FROM pg_index x
     WHERE vias[i] = 'index' AND x.indexrelid = to_regclass(names[i])
    UNION ALL SELECT k.confrelid::regclass FROM pg_constraint k
     WHERE vias[i] LIKE 'references%' AND k.contype = 'f' AND k.conrelid = to_regclass(names[i])
      AND (vias[i] = 'references' OR (vias[i] = 'references-constraint' AND k.conname = details[i])
       OR (vias[i] = 'references-column' AND (SELECT a.attnum FROM pg_attribute a
            WHERE a.attrelid = k.conrelid AND a.attname = details[i]) = ANY (k.conkey)))
   LOOP
    IF (SELECT relkind FROM pg_class WHERE oid = target) IN ('r', 'p', 'f') THEN
     PERFORM set_config('lock_timeout',
      greatest(1, ceil(extract(epoch FROM round_end - clock_timestamp()) * 1000)) || 'ms', true);
     BEGIN EXECUTE format('LOCK TABLE %s%s IN %s MODE', prefixes[i], target, modes[i]);
     EXCEPTION WHEN insufficient_privilege THEN NULL; END;
    END IF;
   END LOOP;
  END LOOP;
  EXIT;
 EXCEPTION WHEN lock_not_available THEN
  IF clock_timestamp() >= budget_end THEN RAISE; END IF;
  PERFORM pg_sleep(least(0.02 + random() * 0.04, extract(epoch FROM budget_end - clock_timestamp())));
  round_ms := least(round_ms * 2, {min(LONGEST_ROUND_MS, budget_ms)});
 END;
END LOOP;
PERFORM set_config('lock_timeout', '{lock_timeout_ms}ms', true);
END $release_runner_lock_ahead$"""
