"""Comparing schemas and saying what differs: the live database against the snapshot (`verify`,
the end of `migrate`, `baseline`) and a scratch replay against the snapshot (`check`). Also the
replay itself: every migration applied from empty into a scratch database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from release_runner.core import drift, phases, schema
from release_runner.core import schema as schema_module
from release_runner.core.errors import DriftError, MigrationFailed, UsageError
from release_runner.core.events import Event, Level
from release_runner.core.migrations import Migration
from release_runner.core.objects import (
    Objects,
    as_schema,
    health_objects,
    objects_from_catalog,
    without_tables,
)
from release_runner.core.settings import Settings
from release_runner.db import catalog
from release_runner.db.connection import Connection, with_search_path
from release_runner.db.history import HistoryStore, RunContext, ensure_schema
from release_runner.run import executor, scratch
from release_runner.run.gate import preflight
from release_runner.run.log import emit
from release_runner.run.session import Session, open_connection


def expected_schema(settings: Settings) -> schema.Snapshot | None:
    """The snapshot file, read before anything is changed so that a missing (with
    --require-snapshot), truncated or unreadable file refuses the run up front."""

    expected = schema.load(settings.snapshot_file)
    if expected is None and settings.require_snapshot:
        raise UsageError(
            f"{settings.snapshot_file}: no expected schema (--require-snapshot); create it "
            "with `release-runner snapshot` and commit it",
            file=str(settings.snapshot_file),
        )
    return expected


def live_schema(conn: Connection, settings: Settings) -> schema.Snapshot:
    """The live schema, as a snapshot holds it."""
    # A schema target's functions are hashed as if they were the snapshot's (`public`).
    schema_as = (settings.schema_target, "public") if settings.schema_target else None
    objects = objects_from_catalog(catalog.fetch_catalog(conn, settings.history_schema), schema_as)
    return schema.Snapshot(_ours(objects, settings), conn.info.server_version // 10000)


def _ours(objects: Objects, settings: Settings) -> Objects:
    """The objects less drizzle-kit's and Prisma's own history tables: the runner reads them,
    no migration makes them."""
    foreign = {settings.drizzle_history, f"{settings.prisma_schema or 'public'}._prisma_migrations"}
    return without_tables(objects, {name if "." in name else f"public.{name}" for name in foreign})


def _health(conn: Connection, settings: Settings) -> tuple[Objects, int]:
    """What verification without a snapshot checks (the INVALID indexes and NOT VALID
    constraints), and how many indexes and constraints it looked at: one small read."""
    raw = catalog.fetch_catalog(conn, settings.history_schema, "health")
    return _ours(health_objects(raw), settings), int(raw["checked"])


def compared(settings: Settings, expected: Objects | None, actual: Objects) -> list[drift.Mismatch]:
    """drift.compare(), owners and privileges left out when the settings say so; for a schema
    target, its schema alone against the snapshot's `public`."""
    if settings.schema_target and expected is not None:
        expected = as_schema(expected, "public", "public")
        actual = as_schema(actual, settings.schema_target, "public")
    if not settings.compare_privileges:
        actual = schema.without_privileges(actual)
        expected = None if expected is None else schema.without_privileges(expected)
    return drift.compare(expected, actual)


def report(
    mismatches: list[drift.Mismatch], failing: Callable[[drift.Mismatch], bool]
) -> list[drift.Mismatch]:
    """One `verify.mismatch` per difference, at level error where it fails the run; returns
    the failing ones."""
    for mismatch in mismatches:
        emit(
            Event.VERIFY_MISMATCH,
            Level.ERROR if failing(mismatch) else Level.WARNING,
            **mismatch.as_event(),
            describe=mismatch.describe(),
        )
    return [m for m in mismatches if failing(m)]


def listing(mismatches: list[drift.Mismatch], most: int = 20) -> dict[str, str]:
    """The first differences in words and what to do about them: where owners or privileges
    differ, how to leave them out when roles differ between environments on purpose; where
    every difference is an object only the database has, that a stale snapshot explains
    them. A DriftError's `listed` and `advice`."""
    more = " ..." if len(mismatches) > most else ""
    privileges = any(
        m.kind is drift.Kind.CHANGED and set(m.expected or {}) & {"owner", "acl"} for m in mismatches
    )
    advice = ""
    if privileges:
        advice = (
            "Owners or privileges differ: if the roles differ between environments on purpose, "
            "pass --ignore-privileges"
        )
    elif all(m.kind is drift.Kind.EXTRA for m in mismatches):
        advice = (
            "Each is an object the snapshot does not know: if a migration made it, the snapshot "
            "is stale; run `release-runner snapshot` and commit the file"
        )
    return {"listed": "; ".join(m.describe() for m in mismatches[:most]) + more, "advice": advice}


def verify_live(conn: Connection, settings: Settings, snapshot: schema.Snapshot | None) -> None:
    """Compare the live schema with the snapshot (or run the snapshot-free checks); raise
    DriftError on what fails."""
    if snapshot is None:
        emit(
            Event.VERIFY_NO_SNAPSHOT,
            file=str(settings.snapshot_file),
            reason="no expected schema; only invalid indexes and constraints were checked. "
            "Run `release-runner snapshot` and commit the file",
        )
        actual, checked = _health(conn, settings)
        expected, mismatches = None, compared(settings, None, actual)
    else:
        expected, mismatches, checked = _against_snapshot(conn, settings, snapshot)
    _refuse_another_database(settings, expected, mismatches)
    failing = report(mismatches, lambda m: m.fails or settings.strict)
    if failing:
        raise DriftError(
            f"schema verification failed: {len(failing)} difference(s)",
            **listing(failing),
            differences=len(failing),
        )
    emit(Event.VERIFY_PASSED, checked=checked, extras=len(mismatches), snapshot=expected is not None)


def _against_snapshot(
    conn: Connection, settings: Settings, snapshot: schema.Snapshot
) -> tuple[Objects | None, list[drift.Mismatch], int]:
    """The schema expected now, the differences of the live one from it, and how many live
    objects were compared. A snapshot of another major version has the views whose text
    differs rendered again by this server (_rendered_here)."""
    live = live_schema(conn, settings)
    expected = _expected_now(conn, settings, snapshot)
    mismatches = compared(settings, expected, live.objects)
    if snapshot.server_major not in (None, live.server_major):
        mismatches, rendered = _rendered_here(conn, mismatches)
        emit(
            Event.VERIFY_SERVER_DIFFERS,
            snapshot_major=snapshot.server_major,
            server_major=live.server_major,
            rendered_here=rendered,
            reason="definitions render differently between major versions: views whose text "
            "differed were rendered again by this server from the snapshot's text and compared "
            "that way; defaults, checks and other expressions may still show as changed. Take "
            "the snapshot on the production major version (snapshot --scratch-url pointing at "
            "such a server)",
        )
    return expected, mismatches, sum(len(v) for v in live.objects.values())


def _refuse_another_database(
    settings: Settings, expected: Objects | None, mismatches: list[drift.Mismatch]
) -> None:
    """One line instead of the flood when the database is not the one the snapshot describes."""
    found = drift.another_database(expected, mismatches)
    if found is None:
        return
    missing, tables = found
    source = settings.database_url_source or "the URL"
    emit(Event.VERIFY_ANOTHER_DATABASE, missing=missing, expected=tables, source=source)
    raise DriftError(
        f"the database looks like another one: {missing} of the {tables} tables the snapshot "
        f"expects are missing; check the database URL (from {source}) before anything else",
        differences=len(mismatches),
    )


def _expected_now(conn: Connection, settings: Settings, snapshot: schema.Snapshot | None) -> Objects | None:
    """The snapshot's schema, less what the post-deploy migrations still deferred would change."""

    if snapshot is None:
        return None
    deferred = list(HistoryStore(settings.history_schema).read_deferred(conn))
    if not deferred:
        return snapshot.objects
    return phases.expected_with_deferred(snapshot, deferred, str(settings.snapshot_file))


def _rendered_here(conn: Connection, mismatches: list[drift.Mismatch]) -> tuple[list[drift.Mismatch], int]:
    """Drop the views whose definition alone differs and which this server renders, from the
    snapshot's text, exactly as it renders the live one; return what is left and how many
    were compared that way."""
    kept, rendered = [], 0
    for mismatch in mismatches:
        if (
            mismatch.kind is drift.Kind.CHANGED
            and mismatch.object_type == "view"
            and set(mismatch.expected or {}) == {"definition"}
        ):
            rendered += 1
            if catalog.render_view(conn, mismatch.expected["definition"]) == mismatch.actual["definition"]:
                continue
        kept.append(mismatch)
    return kept, rendered


@contextmanager
def scratch_database(settings: Settings) -> Iterator[str]:
    """A URL of an empty database that is dropped (and its local cluster removed) afterwards.
    With a Prisma `?schema=`, its connections put unqualified names there, as the target's do."""

    with scratch.server(settings.scratch_url) as server_url, scratch.database(server_url) as url:
        emit(Event.SCRATCH_READY, source="--scratch-url" if settings.scratch_url else "local cluster")
        yield with_search_path(url, settings.prisma_schema) if settings.prisma_schema else url


def ensure_prisma_schema(conn: Connection, settings: Settings) -> None:
    """Create the schema a Prisma URL names when it is missing, as `prisma migrate` does."""
    if settings.prisma_schema and ensure_schema(conn, settings.prisma_schema):
        emit(
            Event.SCHEMA_CREATED,
            schema=settings.prisma_schema,
            reason="the database URL's ?schema= names it and it did not exist; Prisma creates it too",
        )


def replay(settings: Settings, migrations: list[Migration]) -> schema.Snapshot:
    """Apply every migration from empty into a scratch database; return its schema, with what
    each post-deploy migration changed (read before and after it)."""

    prepared = preflight(migrations, settings, None)
    with scratch_database(settings) as url:
        target = replace(settings, database_url=url, database_url_source="scratch", time_budget=None)
        conn = open_connection(url, settings.application_name, settings.connect_timeout, report=False)
        session = Session(target, conn)
        try:
            ensure_prisma_schema(session.conn, settings)
            session.history.ensure(session.conn)
            context = RunContext(session.history, "scratch", {})
            changes: dict[str, Objects] = {}
            start = 0
            try:
                for index, item in enumerate(prepared):
                    if item.migration.directives.post_deploy:
                        executor.apply_all(session, prepared[start:index], context, None)
                        before = live_schema(session.conn, settings).objects
                        executor.apply_all(session, [item], context, None)
                        after = live_schema(session.conn, settings).objects
                        changes[item.migration.version] = phases.delta(before, after)
                        start = index + 1
                executor.apply_all(session, prepared[start:], context, None)
            except MigrationFailed as failed:
                # The advice a deploy would give (repair this row, drop that index) is about a
                # database that is thrown away here.
                raise MigrationFailed(
                    f"replaying the migrations into a throwaway database failed: "
                    f"{failed.cause or failed.message} Nothing was applied to any database of "
                    "yours: fix the file, then run this command again",
                    **failed.fields,
                ) from None
            final = live_schema(session.conn, settings)
            return schema_module.Snapshot(final.objects, final.server_major, changes)
        finally:
            session.close()


def check_replay(settings: Settings, migrations: list[Migration]) -> None:
    """Every migration applies from empty into a scratch database, and the committed snapshot
    matches what they produce, in both states a deploy verifies: the full schema, and the
    schema while each post-deploy migration waits."""
    snapshot = schema.load(settings.snapshot_file)
    replayed = replay(settings, migrations)
    actual = replayed.objects
    emit(Event.CHECK_REPLAYED, migrations=len(migrations))
    if snapshot is None:
        raise DriftError(
            f"{settings.snapshot_file}: no expected schema; run `release-runner snapshot` and "
            "commit the file",
            file=str(settings.snapshot_file),
        )
    differences = compared(settings, snapshot.objects, actual)
    for version in sorted(set(snapshot.post_deploy) | set(replayed.post_deploy)):
        recorded = phases.undone(snapshot.objects, [snapshot.post_deploy.get(version, {})])
        replayed_before = phases.undone(actual, [replayed.post_deploy.get(version, {})])
        waiting = compared(settings, recorded, replayed_before)
        if version not in snapshot.post_deploy or version not in replayed.post_deploy:
            waiting = waiting or [drift.Mismatch(drift.Kind.MISSING, "post-deploy state of", version)]
        differences += [m for m in waiting if m not in differences]
    mismatches = report(differences, lambda _: True)
    if mismatches:
        raise DriftError(
            f"{settings.snapshot_file} is stale: the migrations produce {len(mismatches)} "
            "difference(s) from it; run `release-runner snapshot` and commit the result",
            **listing(mismatches),
            differences=len(mismatches),
        )
    emit(Event.VERIFY_PASSED, checked=sum(len(v) for v in actual.values()), snapshot=True)
