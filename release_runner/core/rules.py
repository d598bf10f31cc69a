"""Pure: the one registry of preflight's rules. Each rule id names what it finds, the message and
the fix a person reads, and its severity in each phase:

- `lint`: preflight over every pending file, whatever the phase. `Severity.ERROR` refuses the
  batch (exit 5); `Severity.WARNING` is reported (and refuses with `--strict-lint`); None: the
  rule is not linted.
- `release`: in the release phase, a statement that would break the previous release's running
  code on an object that existed before the run refuses the batch, unless its file is a
  post-deploy migration or the rule is allowed (`release_message`, `release_fix`). None: the
  rule does not judge the release phase.

What finds the statements is detect.py (one walker of parse trees for every rule); what decides
how a migration runs is preflight.py. A rule is switched off for a statement or a file by
`-- release-runner: allow RULE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from release_runner.core.migrations import Migration
from release_runner.core.statements import ALLOW_PARSE_ERROR, Statement


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


MOVE = (
    "Make it a contract step: put it in a migration whose header says "
    "`-- release-runner: post-deploy`, applied once every Machine runs the new code"
)
RELEASE_CONTEXT = "release phase: the previous release keeps serving until every Machine is replaced"


@dataclass(frozen=True)
class Rule:
    """One rule: its message and fix in preflight's lint, and in the release phase."""

    id: str
    lint: Severity | None = None
    message: str = ""
    fix: str = ""
    release: str | None = None
    """The release-phase message; None where the rule does not judge the release phase."""
    release_fix: str = MOVE

    def lint_fix(self) -> str:
        """The fix of a lint finding: the rule's own, or how to say it is intended."""
        return self.fix or (
            f"If intended, add `-- release-runner: allow {self.id}` above the statement or in the file header"
        )

    def release_refusal(self, what_breaks: str = "") -> tuple[str, str]:
        """(message, fix) of a release-phase refusal; `what_breaks` adds to the message."""
        assert self.release is not None
        return (
            f"{self.release}{what_breaks} ({RELEASE_CONTEXT})",
            f"{self.release_fix}; or, if the running code does not use it, add "
            f"`-- release-runner: allow {self.id}` above the statement",
        )


def allowed(rule: str, migration: Migration, statement: Statement | None = None) -> bool:
    """Whether `-- release-runner: allow RULE` switches the rule off here."""
    return rule in migration.directives.allow or (statement is not None and rule in statement.allow)


_W = Severity.WARNING
_E = Severity.ERROR
_RULES = [
    # Preflight refuses these whatever the phase: they would certainly fail, or cannot run safely.
    Rule(
        "syntax-error",
        _E,
        fix="Fix the SQL. If the server accepts it but the bundled parser does not, add "
        f"`-- release-runner: allow {ALLOW_PARSE_ERROR}` to the file header",
    ),
    Rule(
        "psql-meta-command",
        _E,
        "a psql meta-command; the server cannot run it",
        "Remove it, or write the SQL it stands for",
    ),
    Rule(
        "nontransactional-statement",
        _E,
        "cannot run inside a transaction, and this file has other statements",
        "Move it into a migration file of its own: a file whose only statement is such a one runs "
        "without a transaction automatically (say so with `-- release-runner: no-transaction` in its header)",
    ),
    Rule(
        "no-transaction-multiple-statements",
        _E,
        "a no-transaction migration holds exactly one statement; this one has {count}",
        "Split the file: one statement per no-transaction migration, so a failure never leaves "
        "half of it applied",
    ),
    Rule(
        "transaction-control",
        _E,
        "transaction control inside a migration; the runner owns the transaction",
        "Remove BEGIN/COMMIT/ROLLBACK/SAVEPOINT; each migration already runs in its own transaction "
        "(use -- release-runner: no-transaction for one that must not)",
    ),
    Rule(
        "copy-from-stdin",
        _E,
        "COPY FROM STDIN / TO STDOUT needs a client data stream, which a migration file cannot carry",
        "Load the data with INSERT ... VALUES, or COPY from a file on the server",
    ),
    Rule(
        "enum-value-used-before-commit",
        _E,
        "uses the enum value added to {type_name} earlier in this file; PostgreSQL refuses a new enum "
        "value until the transaction that added it commits (SQLSTATE 55P04)",
        "Move the ALTER TYPE ... ADD VALUE into a migration file of its own, before this one: each "
        "migration commits before the next starts. If this constant is not a use of the value, add "
        "`-- release-runner: allow enum-value-used-before-commit` above the statement",
    ),
    Rule(
        "releases-runner-lock",
        _E,
        "releases every session advisory lock, the runner's among them: another runner could then "
        "apply the same migrations at the same time",
        "Remove it: the runner resets the session after every migration itself; release a lock of "
        "your own with pg_advisory_unlock(key)",
    ),
    Rule(
        "runner-schema",
        _E,
        "changes the runner's own history in schema {schema}, which decides what is applied",
        "Remove it; change the history with `release-runner repair` or `baseline`, or keep the "
        "runner's history elsewhere with --history-schema",
    ),
    # What breaks the running release only once new code writes the new shape: warnings, in
    # every phase, since the text cannot tell whether new code will.
    Rule(
        "add-enum-value",
        _W,
        "adds an enum label: a running client that does not know it (an old Prisma client) fails on "
        "rows that hold it, once new code writes them",
        "Deploy the code that reads the new label before the code that writes it",
    ),
    Rule(
        "drop-not-null",
        _W,
        "makes a column nullable: a running client that believes it required fails on the first NULL "
        "new code writes",
        "Deploy the code that handles NULL here before the code that writes it",
    ),
    Rule(
        "do-block-changes-schema",
        _W,
        "a DO block that drops or renames: its code is a string the release-phase rules cannot read, "
        "so nothing checks whether the running release still uses what it removes",
        "Write the DROP or RENAME as a statement of its own, where the rules see it",
    ),
    Rule(
        "empty-migration",
        _W,
        "holds no statement (only comments, as `release-runner new` writes a file): it is recorded as "
        "applied and changes nothing",
        "Write its SQL before deploying, or delete the file",
    ),
    Rule(
        "not-analysed",
        _W,
        "nested too deeply for the runner to read its parse tree (a long UNION ALL seed, a long "
        "chain of operators): preflight's rules, lock-ahead and the data checks do not see inside "
        "it; the server checks it when it runs",
    ),
    # Heavy locks and data loss, the way squawk and strong_migrations warn; some also break the
    # running release.
    Rule(
        "create-index-not-concurrently",
        _W,
        "builds the index under a SHARE lock that blocks writes; use CREATE INDEX CONCURRENTLY in a "
        "migration file of its own",
    ),
    Rule(
        "add-column-not-null-without-default",
        _W,
        "fails if the table has rows; add a DEFAULT, or add the column nullable, backfill, then SET NOT NULL",
        release="adds a NOT NULL column without a default: the running release's INSERTs leave it "
        "out and fail",
        release_fix="Give it a DEFAULT, or add it nullable now and SET NOT NULL in a post-deploy migration",
    ),
    Rule(
        "set-not-null",
        _W,
        "scans the whole table under ACCESS EXCLUSIVE; add CHECK (col IS NOT NULL) NOT VALID, "
        "VALIDATE CONSTRAINT, then SET NOT NULL",
        release="makes a column NOT NULL while the running release may still insert rows without it",
    ),
    Rule(
        "change-column-type",
        _W,
        "may rewrite the table under ACCESS EXCLUSIVE, and even a widening fails the running app's "
        "server-side prepared statements that read the column (0A000 cached plan must not change "
        "result type; postgres.js, Prisma and pgx prepare); add a new column, backfill and switch "
        "over instead",
        release="changes a column's type to one the running release may not read or write (not a "
        "safe widening)",
        release_fix="Add a column of the new type, write both, backfill, and drop the old one in a "
        "post-deploy migration",
    ),
    Rule(
        "add-foreign-key-validated",
        _W,
        "validates every row while holding locks on both tables; add it NOT VALID, then VALIDATE "
        "CONSTRAINT in a later migration",
    ),
    Rule(
        "add-unique-constraint",
        _W,
        "builds a unique index under ACCESS EXCLUSIVE; CREATE UNIQUE INDEX CONCURRENTLY first, then "
        "ADD CONSTRAINT ... UNIQUE USING INDEX",
    ),
    Rule(
        "drop-table",
        _W,
        "destroys data, and the running app may still read the table",
        release="drops a table the running release may still read",
    ),
    Rule(
        "drop-column",
        _W,
        "destroys data, and the running app may still read the column",
        release="drops a column the running release may still read or write",
    ),
    Rule("truncate", _W, "destroys data"),
    Rule(
        "rename-table",
        _W,
        "breaks the running app, which still uses the old name",
        release="renames a table the running release still uses by its old name",
    ),
    Rule(
        "rename-column",
        _W,
        "breaks the running app, which still uses the old name",
        release="renames a column the running release still uses by its old name",
        release_fix="Add the new column and write both (expand), backfill, and drop the old one in a "
        "post-deploy migration (contract); see the README's three-release rename",
    ),
    Rule(
        "volatile-default-rewrite",
        _W,
        "a volatile DEFAULT rewrites the whole table under ACCESS EXCLUSIVE; add the column without "
        "it, then backfill in batches",
    ),
    # Only the release phase judges these.
    Rule("drop-default", release="drops a default the running release's INSERTs may rely on"),
    Rule("drop-view", release="drops a view the running release may still read"),
    Rule("rename-view", release="renames a view the running release still reads by its old name"),
    Rule(
        "set-schema",
        release="moves a table, view or type to another schema, out of the running release's reach",
    ),
    Rule("drop-schema", release="drops a schema, and everything in it, that the running release may use"),
    Rule("rename-schema", release="renames a schema the running release still uses by its old name"),
    Rule("drop-type", release="drops a type the running release may still use"),
    Rule("rename-type", release="renames a type the running release still uses by its old name"),
    Rule(
        "remove-enum-value",
        release="re-creates an enum type without labels the running release still writes and compares",
        release_fix="Keep the labels: re-create the type without them in a post-deploy migration, once "
        "no running code writes them",
    ),
    Rule(
        "rename-enum-value",
        release="renames an enum value the running release still writes and compares",
        release_fix="Add the new value in a migration of its own (ADD VALUE), move the rows over, and "
        "stop using the old one in a post-deploy migration",
    ),
]
RULES: dict[str, Rule] = {rule.id: rule for rule in _RULES}
