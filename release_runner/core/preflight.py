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
from release_runner.core.detect import Hit
from release_runner.core.lock_ahead import Lock
from release_runner.core.migrations import Migration, SourceFormat
from release_runner.core.net_effect import Judged, file_hits
from release_runner.core.nontransactional import enum_values_used_too_soon, refuses_transaction_block
from release_runner.core.rules import RULES, Severity, allowed
from release_runner.core.runner_state import changes_runner_schema, releases_runner_lock
from release_runner.core.statements import UNREAD_DEEP, SqlSyntaxError, Statement, node


@dataclass(frozen=True)
class Finding:
    """One preflight result; `severity` is error (refuses the batch) or warning."""

    rule: str
    severity: Severity
    file: str
    line: int
    column: int
    statement: str
    message: str
    fix: str
    table: str | None = None
    hit: Hit | None = None
    """The rule hit it reports, where a rule of detect.py found it."""

    @property
    def object(self) -> str | None:
        """What the finding is about, as written: a table, view, type or schema, or a column
        as `table.column` (an ALTER of several columns has a finding for each)."""
        if self.hit is None or self.hit.name is None:
            return None
        return f"{self.hit.name}.{self.hit.column}" if self.hit.column else self.hit.name

    def describe(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        about = f" on {self.object}" if self.object else ""
        head = f" (statement: {self.statement})" if self.statement else ""
        return f"{where}: {self.rule}{about}: {self.message}{head}. {self.fix}"

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
        if self.object:
            fields["object"] = self.object
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
    hits: list[Judged] = field(default_factory=list)
    """What the rules found in its statements, on objects older than the batch (detect.py)."""
    no_foreign_key: frozenset[tuple[str, str]] = frozenset()
    """(table, column) pairs the catalog shows without a foreign key before the run (set by the
    gate): dropping or retyping such a column locks no referenced table, so none is listed or
    taken ahead."""

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    @cached_property
    def locks(self) -> list[Lock]:
        """Every table lock its statements take (lock_ahead.py), read from the trees once."""
        return lock_ahead.needed(self.statements)

    @property
    def locks_ahead(self) -> list[Lock]:
        """The table locks taken before the first statement; none without a transaction,
        where the one statement takes its own."""
        return self._keyed(self.locks) if self.transactional else []

    def locks_of(self, statements: list[Statement]) -> list[Lock]:
        """The table locks these statements take."""
        return self._keyed(lock_ahead.needed(statements))

    def _keyed(self, locks: list[Lock]) -> list[Lock]:
        """The locks less a referenced table of a column that has no foreign key."""
        unkeyed = self.no_foreign_key
        return [lock for lock in locks if lock.referencing_column not in unkeyed]

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
    migration: Migration,
    created: set[tuple[str, str]] | None = None,
    strict_lint: bool = False,
    runner_schema: str = "release_runner",
) -> Prepared:
    """Split, classify and lint one migration. `created` carries what earlier migrations of the
    same batch created (new objects: locking or dropping them hurts nobody); it is updated with
    this migration's. `runner_schema` holds the runner's history (no migration may change it)."""
    try:
        statements = migration.statements
    except SqlSyntaxError as error:
        return Prepared(migration, [], True, [_syntax_finding(migration, error)])
    unwrapped = False
    if migration.source_format is not SourceFormat.NATIVE:
        statements, unwrapped = _unwrap(statements)
    nontransactional = [s for s in statements if refuses_transaction_block(s)]
    explicit = migration.directives.no_transaction
    findings = _transaction_findings(migration, statements, nontransactional)
    if not statements and not allowed("empty-migration", migration):
        findings.append(_finding("empty-migration", migration, Statement("", 1, 1)))
    for statement in statements:
        kind, body = node(statement)
        if kind == "CopyStmt" and not body.get("filename") and not body.get("is_program"):
            findings.append(_finding("copy-from-stdin", migration, statement))
        if statement.unread == UNREAD_DEEP and not allowed("not-analysed", migration, statement):
            findings.append(_finding("not-analysed", migration, statement))
        if releases_runner_lock(statement):
            findings.append(_finding("releases-runner-lock", migration, statement))
        if changes_runner_schema(statement, runner_schema):
            findings.append(_finding("runner-schema", migration, statement, schema=runner_schema))
    for statement, type_name in enum_values_used_too_soon(statements):
        if not allowed("enum-value-used-before-commit", migration, statement):
            findings.append(
                _finding("enum-value-used-before-commit", migration, statement, type_name=type_name)
            )
    judged = list(file_hits(statements, created if created is not None else set()))
    for item in judged:
        rule = RULES[item.hit.rule]
        if rule.lint is not None and not allowed(rule.id, migration, item.hit.statement):
            severity = Severity.ERROR if strict_lint else rule.lint
            findings.append(_finding(rule.id, migration, item.hit.statement, severity, item.hit))
    transactional = not (explicit or (len(statements) == 1 and nontransactional))
    return Prepared(
        migration,
        statements,
        transactional,
        findings,
        unwrapped,
        automatic_no_transaction=not transactional and not explicit,
        hits=judged,
    )


def _transaction_findings(
    migration: Migration, statements: list[Statement], nontransactional: list[Statement]
) -> list[Finding]:
    """What the runner's transaction per file cannot hold: a statement that refuses a
    transaction block beside others, several statements in a no-transaction file, and
    transaction control of the file's own."""
    findings = []
    if (migration.directives.no_transaction or nontransactional) and len(statements) > 1:
        if nontransactional:
            findings += [_finding("nontransactional-statement", migration, s) for s in nontransactional]
        else:
            findings.append(
                _finding(
                    "no-transaction-multiple-statements", migration, statements[1], count=len(statements)
                )
            )
    findings += [_finding("transaction-control", migration, s) for s in statements if _transaction_kind(s)]
    return findings


def prepare_all(
    migrations: Iterable[Migration], strict_lint: bool = False, runner_schema: str = "release_runner"
) -> list[Prepared]:
    created: set[tuple[str, str]] = set()
    return [prepare(migration, created, strict_lint, runner_schema) for migration in migrations]


def _finding(
    rule_id: str,
    migration: Migration,
    statement: Statement,
    severity: Severity | None = None,
    hit: Hit | None = None,
    **details: object,
) -> Finding:
    """A finding of the rule on the statement, worded as the registry says (`details` fill in
    its message)."""
    rule = RULES[rule_id]
    return Finding(
        rule_id,
        severity or rule.lint or Severity.ERROR,
        migration.label,
        statement.line,
        statement.column,
        statement.head,
        rule.message.format(**details),
        rule.lint_fix(),
        hit.name if hit else None,
        hit,
    )


def _syntax_finding(migration: Migration, error: SqlSyntaxError) -> Finding:
    source_line = migration.text.splitlines()[error.line - 1] if migration.text else ""
    shown_line = mask.statement(source_line.strip())[:60]  # a line may hold a password
    rule = RULES["psql-meta-command" if source_line.lstrip().startswith("\\") else "syntax-error"]
    message = rule.message or mask.message(error.message, mask.literals(source_line)) or error.message
    column = 1 if rule.id == "psql-meta-command" else error.column
    return Finding(
        rule.id, Severity.ERROR, migration.label, error.line, column, shown_line, message, rule.fix
    )


def release_hits(prepared: list[Prepared]) -> list[tuple[Prepared, Hit]]:
    """The hits the release phase judges: rules that break the running release, in pre-deploy
    files, not allowed, on names that can be looked up (see detect.py)."""
    return [
        (item, judged.hit)
        for item in prepared
        if not item.migration.directives.post_deploy
        for judged in item.hits
        if RULES[judged.hit.rule].release is not None
        and judged.hit.name is not None
        and not allowed(judged.hit.rule, item.migration, judged.hit.statement)
        and not (judged.after_search_path and "." not in judged.hit.name)
    ]


def refuse_in_release_phase(item: Prepared, hit: Hit, what_breaks: str = "") -> None:
    """The hit breaks the running release (`what_breaks` adds to the rule's message): its lint
    warning, if any, becomes the refusal."""
    message, fix = RULES[hit.rule].release_refusal(what_breaks)
    statement = hit.statement
    refusal = Finding(
        hit.rule,
        Severity.ERROR,
        item.migration.label,
        statement.line,
        statement.column,
        statement.head,
        message,
        fix,
        hit.name,
        hit,
    )
    item.findings = [f for f in item.findings if f.hit is not hit] + [refusal]
