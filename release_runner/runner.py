"""Orchestration of each command: preflight -> connect -> lock -> validate -> apply -> verify.
Emits the log events, raises a ReleaseError subclass on every failure, and records how far a
run got in a Progress value that the CLI turns into the final `release.finished` line.

Every command is a plain function usable as a library call; the CLI is a thin shell over them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release_runner import migrations as migrations_module
from release_runner import plan as plan_module
from release_runner.errors import (
    DriftError,
    MigrationFailed,
    RefusedError,
    UnreachableError,
    UsageError,
)
from release_runner.log import fly_context, get_logger, redact
from release_runner.retry import with_retries
from release_runner.settings import Settings

# preflight (and pglast) and schema load only when there is something to parse or verify, so a
# no-op deploy pays for neither; psycopg loads with db, only for commands that connect.
if TYPE_CHECKING:
    from release_runner import schema
    from release_runner.db import Connection, MigrationError, RunContext, Watcher
    from release_runner.preflight import Prepared


@dataclass
class Progress:
    """How far a run got; read by the CLI for the summary line, whatever happened."""

    applied: list[str] = field(default_factory=list)
    pending: int = 0
    migration: str | None = None
    started: float = field(default_factory=time.monotonic)


def load(settings: Settings) -> migrations_module.MigrationSet:
    found = migrations_module.read_directory(settings.migrations_dir)
    log = get_logger()
    for path in found.ignored:
        log.warning(
            "migrations.ignored",
            file=str(path),
            reason=f"not listed in the {found.source_format} journal; it will not be applied",
        )
    return found


def _require_url(settings: Settings) -> str:
    if not settings.database_url:
        raise UsageError(
            "no database URL: pass --database-url or set RELEASE_RUNNER_DATABASE_URL, "
            "DIRECT_DATABASE_URL or DATABASE_URL"
        )
    return settings.database_url


def connect(settings: Settings, budget: float | None = None) -> Connection:
    """Connect to the target with bounded retries; logs `db.connect_retry` and `db.connected`."""
    from release_runner import db

    log = get_logger()
    url = _require_url(settings)

    def on_retry(attempt: int, reason: str, delay: float) -> None:
        log.warning("db.connect_retry", attempt=attempt, reason=reason, delay_ms=round(delay * 1000))

    conn = db.connect(
        url,
        settings.connect_timeout if budget is None else budget,
        settings.application_name,
        on_retry,
    )
    log.info(
        "db.connected",
        source=settings.database_url_source,
        server_version=db.server_version(conn),
        backend_pid=conn.info.backend_pid,
        **(
            {"url_parameters_dropped": list(settings.database_url_dropped)}
            if settings.database_url_dropped
            else {}
        ),
    )
    return conn


def _take_lock(conn: Connection, settings: Settings, key: int) -> Connection:
    """Poll pg_try_advisory_lock (never a blocking lock: it can deadlock against CREATE INDEX
    CONCURRENTLY) until --lock-wait runs out, saying who holds it. A connection lost while
    waiting is replaced; returns the connection that holds the lock."""
    from release_runner import db

    log = get_logger()
    deadline = time.monotonic() + settings.lock_wait
    delay = 0.05
    last_report = 0.0
    while True:
        try:
            if db.try_lock(conn, key):
                break
            now = time.monotonic()
            if now >= deadline:
                raise UnreachableError(
                    f"runner lock not acquired within {settings.lock_wait:g}s: another "
                    "release-runner is still working on this database; rerun when it is done, or "
                    "raise --lock-wait",
                    holders=db.lock_holders(conn, key),
                )
            if now - last_report >= 5.0 or last_report == 0.0:
                log.info("lock.waiting", holders=db.lock_holders(conn, key), key=key)
                last_report = now
        except db.OperationalError:
            if not (conn.closed or conn.broken):
                raise
            conn.close()
            conn = connect(settings)
            continue
        time.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
        delay = min(delay * 2, 1.0)
    log.info("lock.acquired", key=key)
    return conn


def _lint(
    pending: list[migrations_module.Migration],
    settings: Settings,
    conn: Connection | None,
) -> list[Prepared]:
    """Parse every pending migration and log what preflight found, warnings with the table's
    estimated rows and size when connected."""
    from release_runner.preflight import prepare_all

    log = get_logger()
    prepared = prepare_all(pending, settings.strict_lint)
    findings = [finding for item in prepared for finding in item.findings]
    tables = sorted({finding.table for finding in findings if finding.table})
    sizes: dict[str, dict[str, Any]] = {}
    if conn is not None and tables:
        from release_runner import db

        sizes = db.table_sizes(conn, tables)
    for finding in findings:
        if finding.severity == "error":
            log.error("preflight.error", **finding.as_event(), **sizes.get(finding.table or "", {}))
        else:
            log.warning("preflight.warning", **finding.as_event(), **sizes.get(finding.table or "", {}))
    return prepared


def _preflight(
    pending: list[migrations_module.Migration],
    settings: Settings,
    conn: Connection | None,
) -> list[Prepared]:
    """_lint(), refusing the whole batch on any error."""
    prepared = _lint(pending, settings, conn)
    errors = [finding for item in prepared for finding in item.errors]
    if errors:
        raise RefusedError(
            f"preflight refused {len(errors)} problem(s); nothing was applied. "
            + " | ".join(finding.describe() for finding in errors),
            findings=len(errors),
        )
    return prepared


def _history(
    conn: Connection, settings: Settings, found: migrations_module.MigrationSet
) -> tuple[list[plan_module.HistoryRow], list[migrations_module.Migration]]:
    """Our history rows, plus what drizzle-kit's or Prisma's own history says was applied and
    ours does not know yet (to import). Unmatched foreign rows refuse the run."""
    from release_runner import db

    rows = db.read_history(conn, settings.history_schema)
    if found.source_format not in ("drizzle", "prisma"):
        return rows, []
    from release_runner import adopt

    table = settings.drizzle_history if found.source_format == "drizzle" else "_prisma_migrations"
    foreign = db.read_foreign_history(conn, found.source_format, table)
    if not foreign:
        return rows, []
    match = adopt.match_drizzle if found.source_format == "drizzle" else adopt.match_prisma
    adoption = match(foreign, found.migrations)
    if adoption.problems:
        log = get_logger()
        for problem in adoption.problems:
            log.error("history.refused", source=adoption.source, reason=problem)
        raise RefusedError(
            f"the {adoption.source} history in the database does not match the files: "
            + " | ".join(adoption.problems),
            problems=len(adoption.problems),
        )
    known = {row.version for row in rows}
    to_import = [m for m in adoption.applied if m.version not in known]
    imported = [
        plan_module.HistoryRow(m.version, m.name, m.checksum, "imported", plan_module.APPLIED)
        for m in to_import
    ]
    return rows + imported, to_import


def _validated_plan(
    conn: Connection,
    settings: Settings,
    found: migrations_module.MigrationSet,
    context: RunContext | None = None,
) -> plan_module.Plan:
    """The plan, refusing on edited, missing, out-of-order or unresolved history. With a
    context (migrate), foreign history is imported first."""
    from release_runner import db

    rows, to_import = _history(conn, settings, found)
    if to_import and context is not None:
        db.record_rows(conn, context, to_import, "imported")
        get_logger().info(
            "history.imported",
            source=found.source_format,
            count=len(to_import),
            first=to_import[0].version,
            last=to_import[-1].version,
        )
    current = plan_module.make_plan(found.migrations, rows)
    problems = current.problems
    if problems:
        log = get_logger()
        for problem in problems:
            log.error("history.refused", reason=problem)
        raise RefusedError(
            "refused before changing anything: " + " | ".join(problems), problems=len(problems)
        )
    return current


@dataclass
class _Session:
    """The locked connection of a run; `conn` changes when a lost connection is replaced."""

    conn: Connection


@contextmanager
def _locked_session(settings: Settings) -> Iterator[_Session]:
    """Connect, refuse transaction-mode poolers, take the runner lock; release it at the end."""
    from release_runner import db

    session = _Session(connect(settings))
    try:
        pooled, read_only = db.probe(_require_url(settings), session.conn, settings.application_name)
        if pooled:
            raise UsageError(
                "the database URL goes through a transaction-mode pooler (PgBouncer "
                "pool_mode=transaction, a Neon -pooler host, Supabase port 6543), which breaks "
                "the runner's session lock and SET; set DIRECT_DATABASE_URL (or --database-url) "
                "to the direct host"
            )
        if read_only:
            raise UsageError(
                "the database URL points at a read-only server (a replica, or default_transaction_"
                "read_only); point it at the primary"
            )
        session.conn = _take_lock(session.conn, settings, db.lock_key(settings.history_schema))
        yield session
    except db.OperationalError as error:
        # Lost between migrations (or while reading history or the catalog): nothing is half
        # applied, since each migration commits with its history row or not at all.
        raise UnreachableError(
            f"lost the connection to the database: {redact(str(error).strip())}; every migration "
            "applied so far is recorded; deploy again to continue"
        ) from None
    except db.DatabaseError as error:
        # The server refused one of the runner's own steps (creating its schema, reading the
        # catalog): a matter of the role's privileges or the server's settings.
        raise UsageError(
            f"the database refused a step of the runner ({error.sqlstate}): "
            f"{redact(str(error).strip())}; check the role's privileges (it needs CREATE on the "
            "database for the history schema, and ownership of what the migrations change)"
        ) from None
    finally:
        session.conn.close()  # ends the session: an open transaction rolls back, the lock goes


def migrate(settings: Settings, progress: Progress, run_id: str) -> None:
    """The deploy-time command. Raises a ReleaseError subclass on anything but full success."""
    from release_runner import db

    log = get_logger()
    found = load(settings)
    if settings.dry_run:
        plan_report(settings)
        return
    with _locked_session(settings) as session:
        db.ensure_history(session.conn, settings.history_schema)
        context = db.RunContext(settings.history_schema, run_id, fly_context())
        current = _validated_plan(session.conn, settings, found, context)
        pending = current.pending
        progress.pending = len(pending)
        if pending:
            prepared = _preflight(pending, settings, session.conn)
            session.conn = _apply_all(session.conn, prepared, settings, context, progress)
        if not settings.verify:
            log.warning("verify.skipped", reason="--no-verify given; the schema was not checked")
            return
        _verify(session.conn, settings)


def _deadline(settings: Settings, progress: Progress) -> float | None:
    return None if settings.time_budget is None else progress.started + settings.time_budget


def _apply_all(
    conn: Connection,
    prepared: list[Prepared],
    settings: Settings,
    context: RunContext,
    progress: Progress,
) -> Connection:
    """Apply in order; returns the connection in use at the end (it changes on reconnect)."""
    from release_runner import db

    log = get_logger()
    deadline = _deadline(settings, progress)

    def report(version: str, blockers: list[dict[str, Any]]) -> None:
        log.warning("migration.waiting", version=version, blockers=blockers)

    watcher = db.Watcher(_require_url(settings), settings.application_name, deadline, report)
    try:
        for item in prepared:
            migration = item.migration
            if deadline is not None and time.monotonic() >= deadline:
                raise UnreachableError(
                    f"time budget of {settings.time_budget:g}s spent before {migration.label}; "
                    f"{len(progress.applied)} applied, {progress.pending} pending; deploy again "
                    "(or run `release-runner migrate`) to continue",
                )
            conn = _apply_one(conn, item, settings, context, watcher, progress)
    finally:
        watcher.close()
    return conn


def _apply_one(
    conn: Connection,
    item: Prepared,
    settings: Settings,
    context: RunContext,
    watcher: Watcher,
    progress: Progress,
) -> Connection:
    """One migration with its retries; returns the (possibly new) connection."""
    from release_runner import db

    log = get_logger()
    migration = item.migration
    facts = {"version": migration.version, "name": migration.name, "file": migration.label}
    if item.unwrapped:
        log.info(
            "migration.unwrapped",
            **facts,
            reason="dropped the file's own BEGIN/COMMIT; the runner's transaction covers the whole file",
        )
    log.info(
        "migration.started",
        **facts,
        transaction_mode=item.transaction_mode,
        **({"automatic": True} if item.automatic_no_transaction else {}),
        statements=len(item.statements),
    )
    state = _Attempts(conn)

    def attempt() -> None:
        state.count += 1
        current = state.conn
        if current.closed or current.broken:
            current = state.conn = _reconnect(settings)
            row = db.history_row(current, settings.history_schema, migration.version)
            if row is not None and row.status == plan_module.APPLIED:
                # The COMMIT had landed before the connection died: never run it twice.
                log.info("migration.already_applied", **facts, reason="found in history after reconnect")
                state.already_applied = True
                return
            if row is not None and state.statement_unsent:
                # A no-transaction migration whose `started` row committed, but whose statement
                # never left this process: nothing ran, so the row can go.
                db.delete_row(current, settings.history_schema, migration.version)
        with watcher.watching(migration.version, current, item.lock_timeout(settings.lock_timeout)):
            db.apply(current, item, context, settings.lock_timeout, settings.statement_timeout)

    def retryable(error: BaseException) -> bool:
        # A no-transaction statement is never retried blindly: only when it was never sent.
        return (
            isinstance(error, db.MigrationError)
            and error.retry_reason is not None
            and (item.transactional or not error.statement_sent)
        )

    def on_retry(number: int, error: BaseException, delay: float) -> None:
        assert isinstance(error, db.MigrationError)
        state.statement_unsent = not error.statement_sent
        log.warning(
            "migration.retry",
            **facts,
            attempt=number,
            sqlstate=error.sqlstate,
            reason=error.retry_reason,
            error=error.message,
            delay_ms=round(delay * 1000),
            blockers=watcher.last_blockers or None,
        )

    started = time.monotonic()
    progress.migration = migration.label  # named in the summary if this one fails or is cut short
    try:
        with_retries(
            attempt, retryable, on_retry, initial=0.5, maximum=10.0, attempts=max(settings.retries, 1)
        )
    except db.MigrationError as error:
        _fail(error, item, watcher, facts, state.count, settings)
    progress.migration = None
    duration_ms = round((time.monotonic() - started) * 1000)
    progress.applied.append(migration.version)
    progress.pending -= 1
    if not state.already_applied:
        log.info(
            "migration.applied",
            **facts,
            duration_ms=duration_ms,
            attempt=state.count,
            transaction_mode=item.transaction_mode,
        )
    return state.conn


@dataclass
class _Attempts:
    """What the attempts at one migration share: the connection (new after a reconnect), how
    many were made, whether the history showed it already applied, and whether the last
    failure came before the file's statement was sent."""

    conn: Connection
    count: int = 0
    already_applied: bool = False
    statement_unsent: bool = False


def _reconnect(settings: Settings) -> Connection:
    """After a lost connection: connect again within the connect budget and re-take the lock."""
    from release_runner import db

    return _take_lock(connect(settings), settings, db.lock_key(settings.history_schema))


def _fail(
    error: MigrationError,
    item: Prepared,
    watcher: Watcher,
    facts: dict[str, Any],
    attempts: int,
    settings: Settings,
) -> None:
    log = get_logger()
    fields = {**facts, **error.fields(), "attempt": attempts}
    if watcher.last_blockers:
        fields["blockers"] = watcher.last_blockers
    advice = _no_transaction_advice(item) if not item.transactional else ""
    if error.canceled and watcher.budget_expired:
        log.error("migration.failed", **fields, reason="time budget spent; cancelled")
        undone = (
            " It was cancelled." if advice else " It was cancelled and rolled back; deploy again to continue."
        )
        raise UnreachableError(
            f"time budget of {settings.time_budget:g}s spent during {item.migration.label}.{undone}{advice}"
        )
    if error.connection_lost:
        advice += " The connection was lost; retries are exhausted."
    log.error("migration.failed", **fields)
    where = f"{error.file}:{error.line}:{error.column}" if error.line else error.file
    blockers = ""
    if watcher.last_blockers:
        names = ", ".join(f"pid {b['pid']} ({b['application_name'] or '?'})" for b in watcher.last_blockers)
        blockers = f" Blocked by {names}."
    raise MigrationFailed(
        f"{where}: {error.message} (SQLSTATE {error.sqlstate}).{blockers}{advice}",
        sqlstate=error.sqlstate,
    )


def _no_transaction_advice(item: Prepared) -> str:
    """What a human must do after a no-transaction migration failed: it cannot be rolled back,
    and the next run refuses until `repair` says what state the database is in."""
    version = item.migration.version
    advice = (
        " It ran without a transaction, so nothing was rolled back, and it is recorded as "
        f"unfinished: check the database, then `release-runner repair --applied {version}` "
        f"or `repair --forget {version}`."
    )
    node = item.statements[0].node if item.statements else None
    if node and "IndexStmt" in node:
        name = node["IndexStmt"].get("idxname") or "<name>"
        advice += (
            f" A failed CREATE INDEX CONCURRENTLY leaves an INVALID index: DROP INDEX "
            f"CONCURRENTLY IF EXISTS {name}, then `repair --forget {version}` and deploy again."
        )
    return advice


def _verify(conn: Connection, settings: Settings) -> list[schema.Mismatch]:
    """Compare the live schema with the snapshot (or run the snapshot-free checks)."""
    from release_runner import db, schema

    log = get_logger()
    expected = schema.load(settings.snapshot_file)
    if expected is None:
        if settings.require_snapshot:
            raise UsageError(
                f"{settings.snapshot_file}: no expected schema (--require-snapshot); create it "
                "with `release-runner snapshot` and commit it",
                file=str(settings.snapshot_file),
            )
        log.warning(
            "verify.no_snapshot",
            file=str(settings.snapshot_file),
            reason="no expected schema; only invalid indexes and constraints were checked. "
            "Run `release-runner snapshot` and commit the file",
        )
    actual = schema.objects_from_catalog(db.fetch_catalog(conn, settings.history_schema))
    mismatches = schema.compare(expected, actual)
    for mismatch in mismatches:
        level = "error" if mismatch.fails or settings.strict else "warning"
        getattr(log, level)("verify.mismatch", **mismatch.as_event(), describe=mismatch.describe())
    failing = [m for m in mismatches if m.fails or settings.strict]
    if failing:
        raise DriftError(
            f"schema verification failed: {len(failing)} difference(s): "
            + "; ".join(m.describe() for m in failing[:20])
            + (" ..." if len(failing) > 20 else ""),
            differences=len(failing),
        )
    log.info(
        "verify.passed",
        checked=sum(len(v) for v in actual.values()),
        extras=len(mismatches),
        snapshot=expected is not None,
    )
    return mismatches


def verify(settings: Settings) -> list[schema.Mismatch]:
    conn = connect(settings)
    try:
        return _verify(conn, settings)
    finally:
        conn.close()


def status(settings: Settings) -> plan_module.Plan:
    """Read-only: the state of every migration (never creates the history table)."""

    found = load(settings)
    conn = connect(settings)
    try:
        return plan_module.make_plan(found.migrations, _history(conn, settings, found)[0])
    finally:
        conn.close()


@dataclass
class PlanReport:
    """What `migrate` would do now: pending migrations as prepared, and refusals."""

    plan: plan_module.Plan
    prepared: list[Prepared]
    settings: Settings

    def as_dict(self) -> dict[str, Any]:
        items = []
        for item in self.prepared:
            items.append(
                {
                    "version": item.migration.version,
                    "name": item.migration.name,
                    "file": item.migration.label,
                    "transaction_mode": item.transaction_mode,
                    "statements": len(item.statements),
                    "lock_timeout_ms": round(item.lock_timeout(self.settings.lock_timeout) * 1000),
                    "findings": [{"severity": f.severity, **f.as_event()} for f in item.findings],
                }
            )
        return {
            "pending": items,
            "total": len(items),
            "refusals": self.plan.problems,
            "errors": sum(len(item.errors) for item in self.prepared),
            "warnings": sum(len(item.warnings) for item in self.prepared),
        }


def plan_report(settings: Settings) -> PlanReport:
    """Read-only: what would run, with preflight findings. Writes nothing, not even the history
    table."""
    found = load(settings)
    conn = connect(settings)
    try:
        current = plan_module.make_plan(found.migrations, _history(conn, settings, found)[0])
        prepared = _lint(current.pending, settings, conn)
    finally:
        conn.close()
    return PlanReport(current, prepared, settings)


def _replay(settings: Settings, migrations: list[migrations_module.Migration], url: str) -> schema.Objects:
    """Apply every migration from empty into the scratch database at `url`; return its schema."""
    from release_runner import db, schema

    scratch_settings = _with_url(settings, url)
    prepared = _preflight(migrations, scratch_settings, None)
    conn = db.connect(url, settings.connect_timeout, settings.application_name, lambda *_: None)
    try:
        db.ensure_history(conn, settings.history_schema)
        context = db.RunContext(settings.history_schema, "scratch", {})
        progress = Progress(pending=len(prepared))
        conn = _apply_all(conn, prepared, scratch_settings, context, progress)
        return schema.objects_from_catalog(db.fetch_catalog(conn, settings.history_schema))
    finally:
        conn.close()


def _with_url(settings: Settings, url: str) -> Settings:
    from dataclasses import replace

    return replace(settings, database_url=url, database_url_source="scratch", time_budget=None)


@contextmanager
def _scratch(settings: Settings) -> Iterator[str]:
    from release_runner import scratch

    log = get_logger()
    with scratch.server(settings.scratch_url) as server_url, scratch.database(server_url) as url:
        log.info("scratch.ready", source="--scratch-url" if settings.scratch_url else "local cluster")
        yield url


def snapshot(settings: Settings) -> Path:
    """Replay every migration into a scratch database and write the expected-schema file."""
    from release_runner import schema

    found = load(settings)
    with _scratch(settings) as url:
        objects = _replay(settings, found.migrations, url)
    path = settings.snapshot_file
    path.write_text(schema.dump(objects))
    get_logger().info("snapshot.written", file=str(path), objects=sum(len(v) for v in objects.values()))
    return path


def check(settings: Settings) -> int:
    """CI gate: the directory reads, every migration applies from empty, and the committed
    snapshot matches what they produce. Returns how many migrations were replayed."""
    from release_runner import schema

    log = get_logger()
    found = load(settings)
    expected = schema.load(settings.snapshot_file)
    with _scratch(settings) as url:
        actual = _replay(settings, found.migrations, url)
    log.info("check.replayed", migrations=len(found.migrations))
    if expected is None:
        raise DriftError(
            f"{settings.snapshot_file}: no expected schema; run `release-runner snapshot` and "
            "commit the file",
            file=str(settings.snapshot_file),
        )
    mismatches = schema.compare(expected, actual)
    for mismatch in mismatches:
        log.error("verify.mismatch", **mismatch.as_event(), describe=mismatch.describe())
    if mismatches:
        raise DriftError(
            f"{settings.snapshot_file} is stale: the migrations produce {len(mismatches)} "
            "difference(s) from it; run `release-runner snapshot` and commit the result: "
            + "; ".join(m.describe() for m in mismatches[:20]),
            differences=len(mismatches),
        )
    log.info("verify.passed", checked=sum(len(v) for v in actual.values()), snapshot=True)
    return len(found.migrations)


def repair(settings: Settings, version: str, action: str, reason: str, run_id: str) -> None:
    """Resolve a failed or unfinished no-transaction migration after a human fixed it:
    `applied` marks it done, `forget` deletes its row so the next migrate runs it again."""
    from release_runner import db

    log = get_logger()
    with _locked_session(settings) as session:
        conn = session.conn
        row = db.history_row(conn, settings.history_schema, version)
        if row is None or row.status == plan_module.APPLIED:
            raise UsageError(
                f"version {version} has no failed or unfinished record; repair only resolves "
                "those (see `release-runner status`)"
            )
        if action == "applied":
            db.set_status(conn, settings.history_schema, version, plan_module.APPLIED, None)
        else:
            db.delete_row(conn, settings.history_schema, version)
        log.warning(
            "history.repaired",
            version=version,
            action=action,
            reason=reason,
            previous_status=row.status,
            by=db.RunContext(settings.history_schema, run_id, {}).applied_by,
        )


def baseline(settings: Settings, version: str | None, force: bool, run_id: str) -> int:
    """Adopt a database built without any history (`drizzle-kit push`, by hand): compare its
    schema with what the migrations up to `version` produce, and only if nothing is missing or
    changed record them as applied. Returns how many were recorded."""
    from release_runner import db, schema

    log = get_logger()
    found = load(settings)
    versions = [m.version for m in found.migrations]
    if version is not None and version not in versions:
        raise UsageError(f"no migration with version {version!r}; see `release-runner status`")
    upto = found.migrations[: versions.index(version or versions[-1]) + 1]
    expected = schema.load(settings.snapshot_file) if len(upto) == len(found.migrations) else None
    if expected is None:
        with _scratch(settings) as url:
            expected = _replay(settings, upto, url)
    with _locked_session(settings) as session:
        conn = session.conn
        if db.read_history(conn, settings.history_schema):
            raise UsageError(
                "this database already has release-runner history; baseline is only for a "
                "database built without it (use `migrate`)"
            )
        actual = schema.objects_from_catalog(db.fetch_catalog(conn, settings.history_schema))
        failing = [m for m in schema.compare(expected, actual) if m.fails]
        for mismatch in failing:
            log.error("verify.mismatch", **mismatch.as_event(), describe=mismatch.describe())
        if failing and not force:
            raise DriftError(
                f"baseline refused: the database lacks or differs in {len(failing)} object(s) that "
                f"the migrations up to {upto[-1].version} create; nothing was recorded: "
                + "; ".join(m.describe() for m in failing),
                differences=len(failing),
            )
        if failing:
            log.warning(
                "baseline.forced",
                differences=len(failing),
                reason="--force: recording migrations as applied although the schema differs",
            )
        db.ensure_history(conn, settings.history_schema)
        db.record_rows(conn, db.RunContext(settings.history_schema, run_id, fly_context()), upto, "baseline")
        log.info("baseline.recorded", count=len(upto), version=upto[-1].version, forced=bool(failing))
    return len(upto)
