"""A fleet: one release, many databases or schemas. Each target is a complete, independent run
(its own connections, runner lock, history and verification against the one snapshot), judged
exactly as a single run is (conclude.py); the fleet's summary is derived from how they ended.

Order and isolation: the first `canary` targets run alone, one after another; if one of them
does not end ok, nothing else starts. The others then run `parallel` at a time, in order, each
in a thread of its own; a failing target stops the others only once `max_failures` have failed.
Targets not started are `skipped`. A signal stops new targets from starting and cancels what the
running ones run (interrupts.request); each settles as a single run does and reports its end.

A schema target (schema-per-tenant) runs with its schema first on the search_path, keeps its
history and runner lock in a schema of its own, `<history schema>_<tenant>` (so two tenants of
one database never share either), and is verified as its schema alone against the snapshot's
`public` (core/objects.as_schema)."""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from release_runner.core import targets as targets_module
from release_runner.core.errors import Interrupted, UsageError
from release_runner.core.events import Event, Level
from release_runner.core.redact import add_url_secrets
from release_runner.core.settings import Settings, libpq_url
from release_runner.core.targets import FleetOptions, Target, TargetKind, TargetStatus
from release_runner.db.connection import with_dbname, with_search_path
from release_runner.run import interrupts, session
from release_runner.run.conclude import Ending, conclude
from release_runner.run.log import emit
from release_runner.run.progress import Progress

# What one target runs: the command's work on one target's settings; returns facts for its
# `target.finished` (and for a document, such as status's table).
Work = Callable[[Settings], dict[str, Any] | None]


@dataclass
class TargetEnding:
    """How one target's run ended, as its `target.finished` says it."""

    target: Target
    ending: Ending
    facts: dict[str, Any] = field(default_factory=dict)


def resolve(settings: Settings, options: FleetOptions) -> list[Target]:
    """The selected targets, in order: from the file or the query, in this shard."""
    if options.targets_file is not None:
        found = targets_module.read_targets_file(options.targets_file, os.environ)
    else:
        found = _from_query(settings, options.targets_query or "")
    if options.shard:
        shard = targets_module.parse_shard(options.shard, os.environ)
        found = [target for target in found if targets_module.in_shard(target.name, shard)]
    for target in found:
        if target.kind is TargetKind.URL:
            add_url_secrets(target.where)
    return found


def _from_query(settings: Settings, query: str) -> list[Target]:
    with session.connected(settings) as conn, conn.cursor() as cursor:
        cursor.execute(query.encode())
        columns = [column.name for column in cursor.description or []]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return targets_module.from_rows(rows)


def target_settings(settings: Settings, target: Target) -> Settings:
    """The settings of one target's run: its URL, and for a schema its search_path, history
    schema and verification scope."""
    if target.kind is TargetKind.URL:
        try:
            url, dropped, schema = libpq_url(target.where)
        except ValueError as error:
            raise UsageError(f"target {target.name}: its URL cannot be read ({error})") from None
        return replace(
            settings,
            database_url=url,
            database_url_source=f"target {target.name}",
            database_url_dropped=tuple(dropped),
            prisma_schema=schema,
        )
    control = session.require_url(settings)
    source = f"target {target.name} (on {settings.database_url_source})"
    if target.kind is TargetKind.DATABASE:
        return replace(settings, database_url=with_dbname(control, target.where), database_url_source=source)
    return replace(
        settings,
        database_url=with_search_path(control, target.where),
        database_url_source=source,
        prisma_schema=target.where,
        schema_target=target.where,
        history_schema=f"{settings.history_schema}_{target.where}",
    )


def run(
    settings: Settings, options: FleetOptions, chosen: list[Target], work: Work, progress: Progress
) -> list[TargetEnding]:
    """Run `work` on every chosen target: canaries alone first, then the rest `parallel` at a
    time. Returns every target's ending, in the targets' order (skipped ones included)."""
    emit(
        Event.FLEET_STARTED,
        targets=len(chosen),
        canary=min(options.canary, len(chosen)),
        parallel=options.parallel,
        max_failures=options.max_failures,
        shard=options.shard,
    )
    endings: dict[str, TargetEnding] = {}
    canaries, rest = chosen[: options.canary], chosen[options.canary :]
    pool = ThreadPoolExecutor(
        max_workers=max(1, options.parallel), thread_name_prefix="release-runner-target"
    )
    try:
        for target in canaries:
            _settle_all(pool, [target], 1, None, settings, work, progress, endings)
            if endings[target.name].ending.code != 0:
                break
        if all(t.name in endings and endings[t.name].ending.code == 0 for t in canaries):
            _settle_all(pool, rest, options.parallel, options.max_failures, settings, work, progress, endings)
    except Interrupted as interrupted:  # between targets: none is running
        interrupts.request(interrupted.signum)
    finally:
        pool.shutdown(wait=True)
    return [endings.get(t.name) or _skipped(t, progress) for t in chosen]


def _settle_all(
    pool: ThreadPoolExecutor,
    queue: list[Target],
    parallel: int,
    max_failures: int | None,
    settings: Settings,
    work: Work,
    progress: Progress,
    endings: dict[str, TargetEnding],
) -> None:
    """Start targets in order while fewer than `parallel` run; wait for each. A signal stops
    new ones from starting and is handed to the running ones (interrupts.request)."""
    waiting = list(queue)
    running: dict[Future[TargetEnding], Target] = {}
    failures = sum(1 for e in endings.values() if e.ending.code != 0)
    while waiting or running:
        try:
            stop = interrupts.requested() is not None or (
                max_failures is not None and failures >= max_failures
            )
            while waiting and len(running) < parallel and not stop:
                with interrupts.deferred():  # started and tracked as one step
                    target = waiting.pop(0)
                    context = contextvars.copy_context()
                    running[pool.submit(context.run, _one, target, settings, work, progress)] = target
            if not running:
                return
            done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                with interrupts.deferred():  # its ending is kept whatever arrives
                    endings[running[future].name] = future.result()
                    failures += endings[running.pop(future).name].ending.code != 0
        except Interrupted as interrupted:
            # The signal reached this (the main) thread: no new target starts, and the running
            # ones are asked to stop as a signal stops a single run.
            interrupts.request(interrupted.signum)


def _one(target: Target, settings: Settings, work: Work, progress: Progress) -> TargetEnding:
    """One target's run, in its own thread: every event it emits carries `target`."""
    structlog.contextvars.bind_contextvars(target=target.name)
    mine = progress.of(target.name)
    started = time.monotonic()
    ending = conclude(lambda: work(target_settings(settings, target)), mine)
    return _finished(target, mine, ending, round((time.monotonic() - started) * 1000))


def _skipped(target: Target, progress: Progress) -> TargetEnding:
    """A target that never started: a canary failed, too many failed, or a signal came."""
    why = (
        "interrupted before it started"
        if interrupts.requested() is not None
        else "not started: a canary, or --max-failures targets, did not end ok"
    )
    return _finished(target, progress.of(target.name), Ending(TargetStatus.SKIPPED, 0, {"error": why}), 0)


def _finished(target: Target, mine: Progress, ending: Ending, duration_ms: int) -> TargetEnding:
    """Emit `target.finished` with the target's own summary facts (its counts, its error)."""
    facts = mine.summary(None, ending.status, ending.code, **ending.facts)
    facts.pop("command")
    facts["duration_ms"] = duration_ms
    if ending.status == TargetStatus.SKIPPED:
        level = Level.WARNING
    else:
        level = Level.INFO if ending.code == 0 else Level.ERROR
    emit(Event.TARGET_FINISHED, level, target=target.name, **facts)
    return TargetEnding(target, ending, facts)


def summary(endings: list[TargetEnding]) -> tuple[int, dict[str, Any]]:
    """The fleet's exit code and the facts its `release.finished` adds: the targets counted by
    status, and the names of every target that did not end ok."""
    counts = {status.value: 0 for status in TargetStatus}
    for item in endings:
        counts[str(item.ending.status)] += 1
    not_ok = [item.target.name for item in endings if item.ending.status != TargetStatus.OK]
    code = targets_module.fleet_exit_code([item.ending.code for item in endings])
    signum = interrupts.requested()
    if signum is not None and (not_ok or code != 0):
        code = 128 + signum  # an interrupted fleet says so, whatever its targets ended with
    elif not_ok and code == 0:
        code = 1  # a skipped target is not a green deploy
    return code, {"targets": counts, "not_ok": not_ok}
