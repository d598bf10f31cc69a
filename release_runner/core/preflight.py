"""Preflight: read every pending migration with the PostgreSQL parser before touching the
database. Decides how each migration runs (in a transaction or not), refuses what would certainly
fail or cannot run safely, and warns about heavy locks and data loss the way squawk and
strong_migrations do.

Pure: works on Migration values and parse trees, never on a database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from release_runner.core import lock_ahead, mask
from release_runner.core.lock_ahead import Lock
from release_runner.core.migrations import Migration
from release_runner.core.nontransactional import enum_values_used_too_soon, refuses_transaction_block
from release_runner.core.statements import ALLOW_PARSE_ERROR, SqlSyntaxError, Statement, node, relation_name

ERROR = "error"
WARNING = "warning"
ENUM_RULE = "enum-value-used-before-commit"

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

WARNING_RULES = {
    "create-index-not-concurrently": "builds the index under a SHARE lock that blocks writes; "
    "use CREATE INDEX CONCURRENTLY in a migration file of its own",
    "add-column-not-null-without-default": "fails if the table has rows; add a DEFAULT, or add "
    "the column nullable, backfill, then SET NOT NULL",
    "set-not-null": "scans the whole table under ACCESS EXCLUSIVE; add CHECK (col IS NOT NULL) "
    "NOT VALID, VALIDATE CONSTRAINT, then SET NOT NULL",
    "change-column-type": "may rewrite the table under ACCESS EXCLUSIVE, and even a widening "
    "fails the running app's server-side prepared statements that read the column (0A000 cached "
    "plan must not change result type; postgres.js, Prisma and pgx prepare); add a new column, "
    "backfill and switch over instead",
    "add-foreign-key-validated": "validates every row while holding locks on both tables; "
    "add it NOT VALID, then VALIDATE CONSTRAINT in a later migration",
    "add-unique-constraint": "builds a unique index under ACCESS EXCLUSIVE; CREATE UNIQUE INDEX "
    "CONCURRENTLY first, then ADD CONSTRAINT ... UNIQUE USING INDEX",
    "drop-table": "destroys data, and the running app may still read the table",
    "drop-column": "destroys data, and the running app may still read the column",
    "truncate": "destroys data",
    "rename-table": "breaks the running app, which still uses the old name",
    "rename-column": "breaks the running app, which still uses the old name",
    "volatile-default-rewrite": "a volatile DEFAULT rewrites the whole table under ACCESS "
    "EXCLUSIVE; add the column without it, then backfill in batches",
}


@dataclass(frozen=True)
class Finding:
    """One preflight result; `severity` is error (refuses the batch) or warning."""

    rule: str
    severity: str
    file: str
    line: int
    column: int
    statement: str
    message: str
    fix: str
    table: str | None = None

    def describe(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        head = f" (statement: {self.statement})" if self.statement else ""
        return f"{where}: {self.rule}: {self.message}{head}. {self.fix}"

    def as_event(self) -> dict[str, Any]:
        fields = {
            "rule": self.rule,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "statement": self.statement,
            "message": self.message,
            "fix": self.fix,
        }
        if self.table:
            fields["table"] = self.table
        return fields


@dataclass
class Prepared:
    """A migration ready to run: its statements (outer BEGIN/COMMIT removed where the source
    format wraps files in one), whether it runs in a transaction, and what preflight found."""

    migration: Migration
    statements: list[Statement]
    transactional: bool
    findings: list[Finding] = field(default_factory=list)
    unwrapped: bool = False
    automatic_no_transaction: bool = False

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    @cached_property
    def locks_ahead(self) -> list[Lock]:
        """The table locks taken before the first statement (lock_ahead.py); none without a
        transaction, where the one statement takes its own."""
        return lock_ahead.needed(self.statements) if self.transactional else []

    @property
    def transaction_mode(self) -> str:
        return "transaction" if self.transactional else "no-transaction"

    def lock_timeout(self, default: float) -> float:
        """The lock_timeout in force (seconds): the file's directive, else the run's."""
        value = self.migration.directives.lock_timeout
        return default if value is None else value

    def statement_timeout(self, default: float) -> float:
        """The statement_timeout in force (seconds, 0 = off): the file's, else the run's."""
        value = self.migration.directives.statement_timeout
        return default if value is None else value


def _transaction_kind(statement: Statement) -> str | None:
    kind, body = node(statement)
    return str(body.get("kind")) if kind == "TransactionStmt" else None


def _unwrap(statements: list[Statement]) -> tuple[list[Statement], bool]:
    """Drop the BEGIN ... COMMIT pairs that wrap parts of a Prisma/drizzle file (Prisma writes
    one per enum it recreates, with plain statements between them): the runner's own
    transaction covers the whole file, so all of it commits or none of it does. Anything else
    (ROLLBACK, SAVEPOINT, an unpaired BEGIN) is left for the transaction-control refusal."""
    control = [(i, kind) for i, s in enumerate(statements) if (kind := _transaction_kind(s))]
    kinds = [kind for _, kind in control]
    paired = (
        bool(kinds)
        and len(kinds) % 2 == 0
        and all(kind in ("TRANS_STMT_BEGIN", "TRANS_STMT_START") for kind in kinds[0::2])
        and all(kind == "TRANS_STMT_COMMIT" for kind in kinds[1::2])
    )
    if not paired:
        return statements, False
    drop = {index for index, _ in control}
    return [s for i, s in enumerate(statements) if i not in drop], True


def prepare(
    migration: Migration, created_tables: set[str] | None = None, strict_lint: bool = False
) -> Prepared:
    """Split, classify and lint one migration. `created_tables` carries the tables created by
    earlier migrations of the same batch (they are new, so locking them hurts nobody); it is
    updated with this migration's."""
    created = created_tables if created_tables is not None else set()
    try:
        statements = migration.statements
    except SqlSyntaxError as error:
        return Prepared(migration, [], True, [_syntax_finding(migration, error)])
    unwrapped = False
    if migration.source_format in ("prisma", "drizzle"):
        statements, unwrapped = _unwrap(statements)
    findings: list[Finding] = []
    nontransactional = [s for s in statements if refuses_transaction_block(s)]
    explicit = migration.directives.no_transaction
    label = migration.label
    if (explicit or nontransactional) and len(statements) > 1:
        if nontransactional:
            for statement in nontransactional:
                findings.append(
                    _finding(
                        "nontransactional-statement",
                        ERROR,
                        label,
                        statement,
                        "cannot run inside a transaction, and this file has other statements",
                        "Move it into a migration file of its own: a file whose only statement "
                        "is such a one runs without a transaction automatically (say so with "
                        "`-- release-runner: no-transaction` in its header)",
                    )
                )
        else:
            findings.append(
                _finding(
                    "no-transaction-multiple-statements",
                    ERROR,
                    label,
                    statements[1],
                    f"a no-transaction migration holds exactly one statement; this one has {len(statements)}",
                    "Split the file: one statement per no-transaction migration, so a failure "
                    "never leaves half of it applied",
                )
            )
    for statement in statements:
        if _transaction_kind(statement):
            findings.append(
                _finding(
                    "transaction-control",
                    ERROR,
                    label,
                    statement,
                    "transaction control inside a migration; the runner owns the transaction",
                    "Remove BEGIN/COMMIT/ROLLBACK/SAVEPOINT; each migration already runs in its "
                    "own transaction (use -- release-runner: no-transaction for one that must not)",
                )
            )
    for statement in statements:
        kind, body = node(statement)
        if kind == "CopyStmt" and not body.get("filename") and not body.get("is_program"):
            findings.append(
                _finding(
                    "copy-from-stdin",
                    ERROR,
                    label,
                    statement,
                    "COPY FROM STDIN / TO STDOUT needs a client data stream, which a migration "
                    "file cannot carry",
                    "Load the data with INSERT ... VALUES, or COPY from a file on the server",
                )
            )
    for statement, type_name in enum_values_used_too_soon(statements):
        if ENUM_RULE in migration.directives.allow or ENUM_RULE in statement.allow:
            continue
        findings.append(
            _finding(
                ENUM_RULE,
                ERROR,
                label,
                statement,
                f"uses the enum value added to {type_name} earlier in this file; PostgreSQL refuses "
                "a new enum value until the transaction that added it commits (SQLSTATE 55P04)",
                "Move the ALTER TYPE ... ADD VALUE into a migration file of its own, before this "
                "one: each migration commits before the next starts. If this constant is not a "
                f"use of the value, add `-- release-runner: allow {ENUM_RULE}` above the statement",
            )
        )
    for statement in statements:
        for rule, table in _statement_rules(statement, created):
            if rule in migration.directives.allow or rule in statement.allow:
                continue
            findings.append(
                _finding(
                    rule,
                    ERROR if strict_lint else WARNING,
                    label,
                    statement,
                    WARNING_RULES[rule],
                    f"If intended, add `-- release-runner: allow {rule}` above the statement or "
                    "in the file header",
                    table,
                )
            )
    transactional = not (explicit or (len(statements) == 1 and nontransactional))
    return Prepared(
        migration,
        statements,
        transactional,
        findings,
        unwrapped,
        automatic_no_transaction=not transactional and not explicit,
    )


def prepare_all(migrations: Iterable[Migration], strict_lint: bool = False) -> list[Prepared]:
    created: set[str] = set()
    return [prepare(migration, created, strict_lint) for migration in migrations]


def _finding(
    rule: str,
    severity: str,
    label: str,
    statement: Statement,
    message: str,
    fix: str,
    table: str | None = None,
) -> Finding:
    return Finding(
        rule, severity, label, statement.line, statement.column, statement.head, message, fix, table
    )


def _syntax_finding(migration: Migration, error: SqlSyntaxError) -> Finding:
    source_line = migration.text.splitlines()[error.line - 1] if migration.text else ""
    shown_line = mask.statement(source_line.strip())[:60]  # a line may hold a password
    if source_line.lstrip().startswith("\\"):
        return Finding(
            "psql-meta-command",
            ERROR,
            migration.label,
            error.line,
            1,
            shown_line,
            "a psql meta-command; the server cannot run it",
            "Remove it, or write the SQL it stands for",
        )
    return Finding(
        "syntax-error",
        ERROR,
        migration.label,
        error.line,
        error.column,
        shown_line,
        mask.message(error.message, mask.literals(source_line)) or error.message,
        "Fix the SQL. If the server accepts it but the bundled parser does not, add "
        f"`-- release-runner: allow {ALLOW_PARSE_ERROR}` to the file header",
    )


def required_without_default(column_def: dict[str, Any]) -> bool:
    """A column added NOT NULL with nothing to fill it: no DEFAULT, identity or generation."""
    contypes = {str(c.get("Constraint", {}).get("contype")) for c in column_def.get("constraints", [])}
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


def _statement_rules(statement: Statement, created: set[str]) -> list[tuple[str, str | None]]:
    """(rule, table) pairs for one statement; records tables this statement creates."""
    kind, body = node(statement)
    found: list[tuple[str, str | None]] = []
    table = relation_name(body.get("relation"))
    existing = table is not None and table not in created
    if kind in ("CreateStmt", "CreateTableAsStmt"):
        name = table or relation_name(body.get("into", {}).get("rel"))
        if name:
            created.add(name)
    elif kind == "IndexStmt" and not body.get("concurrent") and existing:
        found.append(("create-index-not-concurrently", table))
    elif kind == "AlterTableStmt" and existing:
        for item in body.get("cmds", []):
            found.extend((rule, table) for rule in _alter_rules(item.get("AlterTableCmd", {})))
    elif kind == "DropStmt" and body.get("removeType") == "OBJECT_TABLE":
        found.append(("drop-table", None))
    elif kind == "TruncateStmt":
        found.append(("truncate", None))
    elif kind == "RenameStmt" and existing:
        rename = body.get("renameType")
        if rename == "OBJECT_TABLE":
            found.append(("rename-table", table))
        elif rename == "OBJECT_COLUMN":
            found.append(("rename-column", table))
    return found


def _alter_rules(command: dict[str, Any]) -> list[str]:
    subtype = command.get("subtype")
    definition = command.get("def", {})
    if subtype == "AT_AddColumn":
        column = definition.get("ColumnDef", {})
        rules = []
        if required_without_default(column):
            rules.append("add-column-not-null-without-default")
        if _volatile_default(column):
            rules.append("volatile-default-rewrite")
        return rules
    if subtype == "AT_SetNotNull":
        return ["set-not-null"]
    if subtype == "AT_AlterColumnType":
        return ["change-column-type"]
    if subtype == "AT_DropColumn":
        return ["drop-column"]
    if subtype == "AT_AddConstraint":
        constraint = definition.get("Constraint", {})
        contype = constraint.get("contype")
        if contype == "CONSTR_FOREIGN" and not constraint.get("skip_validation"):
            return ["add-foreign-key-validated"]
        if contype in ("CONSTR_UNIQUE", "CONSTR_PRIMARY") and not constraint.get("indexname"):
            return ["add-unique-constraint"]
    return []
