"""Everything that refuses a run before it changes anything: reading the migrations directory,
the history checked against the files (edited, missing, out of order, unresolved, a foreign
history that does not match), and preflight's findings. Emits the events that name each problem."""

from __future__ import annotations

from typing import Any

from release_runner.core import adopt, detect
from release_runner.core import migrations as migrations_module
from release_runner.core import plan as plan_module
from release_runner.core.errors import RefusedError, UsageError
from release_runner.core.events import Event
from release_runner.core.history import HistoryRow, Mode, Status
from release_runner.core.migrations import SourceFormat
from release_runner.core.outcome import Outcome
from release_runner.core.preflight import Prepared, prepare_all, refuse_in_release_phase, release_hits
from release_runner.core.rules import Severity
from release_runner.core.settings import Settings
from release_runner.core.statements import SqlSyntaxError
from release_runner.db import catalog
from release_runner.db.connection import Connection
from release_runner.db.history import HistoryStore, RunContext, read_foreign_history
from release_runner.run.log import emit
from release_runner.run.settle import settle


def load(settings: Settings) -> migrations_module.MigrationSet:
    """Read the migrations directory; report files a journal leaves out."""
    found = migrations_module.read_directory(settings.migrations_dir, settings.migrations_format)
    for path in found.ignored:
        emit(
            Event.MIGRATIONS_IGNORED,
            file=str(path),
            reason=f"not listed in the {found.source_format} journal; it will not be applied",
        )
    return found


def refuse(problems: list[str], message: str, **facts: Any) -> None:
    """One `history.refused` per problem, then the refusal (exit 5) naming them all."""
    if not problems:
        return
    for problem in problems:
        emit(Event.HISTORY_REFUSED, reason=problem, **facts)
    raise RefusedError(message, listed=" | ".join(problems), problems=len(problems))


def history(
    conn: Connection, settings: Settings, found: migrations_module.MigrationSet
) -> tuple[list[HistoryRow], list[migrations_module.Migration], list[str]]:
    """Our history rows, plus what drizzle-kit's or Prisma's own history says was applied and
    ours does not know yet (to import), and the foreign rows that match no file (problems that
    refuse a migrate; `status` and `plan` show them)."""
    rows = HistoryStore(settings.history_schema).read(conn)
    if found.source_format is SourceFormat.NATIVE:
        return rows, [], []

    table = settings.drizzle_history if found.source_format is SourceFormat.DRIZZLE else "_prisma_migrations"
    foreign = read_foreign_history(conn, found.source_format, table)
    if not foreign:
        return rows, [], []
    match = adopt.match_drizzle if found.source_format is SourceFormat.DRIZZLE else adopt.match_prisma
    adoption = match(foreign, found.migrations)
    known = {row.version for row in rows}
    to_import = [m for m in adoption.applied if m.version not in known]
    imported = [HistoryRow(m.version, m.name, m.checksum, Mode.IMPORTED, Status.APPLIED) for m in to_import]
    return rows + imported, to_import, adoption.unsettled(known)


def history_rows(conn: Connection, settings: Settings) -> list[HistoryRow]:
    """The runner's own history rows as they are (the `history` view: nothing imported)."""
    return HistoryStore(settings.history_schema).read(conn)


def current_plan(
    conn: Connection, settings: Settings, found: migrations_module.MigrationSet
) -> plan_module.Plan:
    """Read-only: the plan, with foreign-history problems among its problems."""
    rows, _, foreign_problems = history(conn, settings, found)
    deferred = HistoryStore(settings.history_schema).read_deferred(conn)
    return plan_module.make_plan(found.migrations, rows, foreign_problems, deferred)


def validated_plan(
    conn: Connection,
    settings: Settings,
    found: migrations_module.MigrationSet,
    context: RunContext,
) -> plan_module.Plan:
    """The plan for `migrate`, foreign history imported first; refuses on edited, missing,
    out-of-order or unresolved history."""
    rows, to_import, foreign_problems = history(conn, settings, found)
    refuse(
        foreign_problems,
        f"the {found.source_format} history in the database does not match the files",
        source=found.source_format,
    )
    if to_import:
        context.record(conn, to_import, Mode.IMPORTED)
        emit(
            Event.HISTORY_IMPORTED,
            source=found.source_format,
            count=len(to_import),
            first=to_import[0].version,
            last=to_import[-1].version,
        )
    current = plan_module.make_plan(
        found.migrations, rows, None, HistoryStore(settings.history_schema).read_deferred(conn)
    )
    if _settle_unresolved(conn, settings, current):
        current = current_plan(conn, settings, found)
    refuse(current.problems, "refused before changing anything")
    return current


def lint(
    pending: list[migrations_module.Migration], settings: Settings, conn: Connection | None
) -> list[Prepared]:
    """Parse every pending migration and report what preflight found, warnings with the
    table's estimated rows and size when connected. In the release phase, with a connection,
    a statement that breaks the running release on an object that existed before the run is
    refused (the catalog says which existed)."""
    prepared = prepare_all(pending, settings.strict_lint, settings.history_schema)
    judged = [] if settings.post_deploy else release_hits(prepared)
    relations = {hit.name for _, hit in judged if hit.kind == detect.RELATION and hit.name}
    tables = sorted({f.table for item in prepared for f in item.findings if f.table} | relations)
    sizes: dict[str, dict[str, Any]] = {}
    if conn is not None and (tables or judged):
        sizes = catalog.table_sizes(conn, tables) if tables else {}
        before = _before(conn, [hit for _, hit in judged], set(sizes))
        for item, hit in judged:
            what_breaks = detect.verdict(hit, before)
            if what_breaks is not None:
                refuse_in_release_phase(item, hit, what_breaks)
    if conn is not None:
        _note_columns_without_foreign_key(conn, prepared)
    for finding in (finding for item in prepared for finding in item.findings):
        event = Event.PREFLIGHT_ERROR if finding.severity is Severity.ERROR else Event.PREFLIGHT_WARNING
        emit(event, **finding.as_event(), **sizes.get(finding.table or "", {}))
    return prepared


def _note_columns_without_foreign_key(conn: Connection, prepared: list[Prepared]) -> None:
    """Which columns a statement drops or retypes have no foreign key now (one catalog query,
    only when there are such columns): their referenced tables are not locked ahead."""
    columns = {column for item in prepared for lock in item.locks if (column := lock.referencing_column)}
    if columns:
        keyed = catalog.foreign_key_columns(conn, sorted(columns))
        for item in prepared:
            item.no_foreign_key = frozenset(columns - keyed)


def _before(conn: Connection, hits: list[detect.Hit], relations: set[str]) -> detect.Before:
    """What the catalog says of the objects the hits name: which exist (the relations are known
    from their sizes), the columns of the tables whose columns a verdict compares, and the
    labels of the enum types a file re-creates."""
    existing = _present(conn, {(hit.kind, hit.name) for hit in hits if hit.name}, relations)
    compared = ("change-column-type", "set-not-null")
    tables = sorted({h.name for h in hits if h.name and (h.rule in compared or h.recreated is not None)})
    enums = sorted({h.name for h in hits if h.name and h.labels is not None})
    return detect.Before(
        existing,
        catalog.columns(conn, tables) if tables else {},
        catalog.enum_labels(conn, enums) if enums else {},
    )


def _present(
    conn: Connection, objects: set[tuple[str, str]], relations: set[str] | None = None
) -> set[tuple[str, str]]:
    """Which of these (kind, name) objects exist: relations from the catalog (or `relations`,
    when their sizes were read already), schemas and types from it too."""
    if relations is None:
        names = sorted(name for kind, name in objects if kind == detect.RELATION)
        relations = set(catalog.table_sizes(conn, names)) if names else set()
    existing = {(detect.RELATION, name) for name in relations}
    for kind in (detect.SCHEMA, detect.TYPE, adopt.FUNCTION):
        names = sorted({name for k, name in objects if k == kind})
        existing |= {(kind, name) for name in catalog.existing(conn, kind, names)} if names else set()
    return existing


def preflight(
    pending: list[migrations_module.Migration], settings: Settings, conn: Connection | None
) -> list[Prepared]:
    """lint(), refusing the whole batch on any error; with a connection, also any file that
    cannot be sent in the server's encoding (exit 2), before anything is applied."""
    if conn is not None:
        _check_encoding(pending, conn.info.encoding)
    prepared = lint(pending, settings, conn)
    _refuse_errors(prepared)
    return prepared


def preflight_files(found: migrations_module.MigrationSet) -> None:
    """A fleet's preflight, once for all its targets and before any is touched: every file is
    parsed (each target then reuses the parse) and what depends on the files alone (a syntax
    error, a statement that cannot run in a transaction beside others...) refuses the run
    (exit 5). What depends on a target (its history, its catalog) is judged per target."""
    prepared = prepare_all(found.migrations)
    for finding in (finding for item in prepared for finding in item.errors):
        emit(Event.PREFLIGHT_ERROR, **finding.as_event())
    _refuse_errors(prepared)


def _refuse_errors(prepared: list[Prepared]) -> None:
    errors = [finding for item in prepared for finding in item.errors]
    if errors:
        raise RefusedError(
            f"preflight refused {len(errors)} problem(s); nothing was applied",
            listed=" | ".join(finding.describe() for finding in errors),
            findings=len(errors),
        )


def _check_encoding(pending: list[migrations_module.Migration], encoding: str) -> None:
    """Every pending file must be representable in the encoding the connection sends in."""
    for migration in pending:
        try:
            migration.text.encode(encoding)
        except UnicodeEncodeError as error:
            line, column = migrations_module.line_and_column(migration.text, error.start)
            raise UsageError(
                f"{migration.label}:{line}:{column}: the character {migration.text[error.start]!r} cannot "
                f"be stored in this database's encoding ({encoding}); nothing was applied. Write it "
                "another way (an escape such as U&'\\00e9'), or use a UTF8 database",
                file=migration.label,
                line=line,
                column=column,
            ) from None


def _settle_unresolved(conn: Connection, settings: Settings, current: plan_module.Plan) -> bool:
    """A no-transaction migration an earlier run left `started` whose outcome the catalog
    proves (a concurrent index build or drop that the run did not see end) is settled before
    refusing;
    returns whether any row changed."""

    changed = False
    for entry in current.entries:
        # Only a row left `started`: the runner never saw that statement end. A `failed` one
        # ended with an error the runner recorded, and is a human's to resolve.
        if entry.migration is None or entry.row is None or entry.row.status is not Status.STARTED:
            continue
        try:
            statements = entry.migration.statements
        except SqlSyntaxError:
            continue
        verdict = settle(
            conn,
            HistoryStore(settings.history_schema),
            entry.migration,
            statements,
            "left unfinished by an earlier run",
        )
        changed = changed or verdict is not Outcome.UNKNOWN
    return changed


def refuse_if_built_without_history(
    conn: Connection, pending: list[migrations_module.Migration], settings: Settings
) -> None:
    """On a database with no history at all (ours or imported): when the first pending
    migration creates what is there already, the database was built another way (drizzle-kit
    push, prisma db push, by hand) and `migrate` would fail on `already exists`. Refuse before
    anything runs (exit 5), naming the objects and the `baseline` command that adopts it."""
    try:
        wanted = sorted({made for migration in pending for made in adopt.created_objects(migration)})
    except SqlSyntaxError:
        return  # preflight names the file and line
    there, whole = adopt.built_without_history(pending, _present(conn, set(wanted)))
    if not there:
        return
    shown = ", ".join(f"{name} ({kind})" for kind, name in there[:5]) + (" ..." if len(there) > 5 else "")
    command = f"release-runner baseline --migrations {settings.migrations_dir}"
    if whole is not None and whole is not pending[-1]:
        command += f" --version {whole.version}"
    advice = (
        f"adopt it: `{command}` checks that the live schema is what the migrations up to "
        f"{(whole or pending[-1]).version} make and records them as applied; then `release-runner "
        "migrate` applies the rest"
        if whole is not None
        else f"it holds part of what {pending[0].label} makes: finish or undo that by hand, then "
        f"`{command} --version {pending[0].version}`"
    )
    raise RefusedError(
        f"the database already has {shown}, which {pending[0].label} creates, and no migration "
        "history: it was built without release-runner (drizzle-kit push, prisma db push, or by "
        f"hand). Nothing was applied; {advice}",
        objects=len(there),
    )
