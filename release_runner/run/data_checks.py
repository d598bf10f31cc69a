"""Data preflight: run core/data_checks.py's probes against the live rows before anything is
applied (on the target, or on a read replica given as `--data-url`), and refuse the release
(exit 5, nothing applied) when the data would refuse a pending statement. Each probe runs in a
READ ONLY transaction of its own, with its own statement_timeout and lock_timeout
(`--data-timeout`), inside the run's time budget; it asks whether violating rows exist and
counts at most LIMIT of them. A probe that times out or cannot run is a
`preflight.data_unknown` warning, never a refusal. No value of a row is ever reported."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from release_runner.core import data_checks, mask
from release_runner.core.errors import RefusedError, UnreachableError
from release_runner.core.events import Event, Level
from release_runner.core.preflight import Prepared
from release_runner.core.settings import LONGEST_BACKOFF, Settings, pg_duration
from release_runner.core.statements import Statement
from release_runner.db import catalog
from release_runner.db.connection import Connection
from release_runner.run import session
from release_runner.run.log import emit

LIMIT = 1000


@dataclass(frozen=True)
class Found:
    """A probe that found rows its statement would refuse: at least `rows` of them."""

    probe: data_checks.Probe
    rows: int


def check(
    conn: Connection,
    prepared: list[Prepared],
    settings: Settings,
    deadline: float | None,
    refuse: bool = True,
) -> list[Found]:
    """Probe every pending statement the data may refuse (on `conn`, or on the `--data-url`
    database: a read replica); report each finding and unknown, and refuse the run on a finding
    (with `refuse`, and `--data-preflight on`; `warn` reports only). Returns the findings."""
    if settings.data_preflight == "off" or not prepared:
        return []
    if settings.data_url is None:
        found = _probe_all(conn, prepared, settings, deadline)
    else:
        found = _probe_replica(conn, settings.data_url, prepared, settings, deadline)
    for finding in found:
        _report(finding, settings)
    if found and refuse and settings.data_preflight == "on":
        raise RefusedError(
            f"data preflight: the live data would refuse {len(found)} pending statement(s); nothing was "
            "applied",
            listed=" | ".join(_describe(f) for f in found),
            findings=len(found),
        )
    return found


def _probe_all(
    conn: Connection,
    prepared: list[Prepared],
    settings: Settings,
    deadline: float | None,
    between: Callable[[], object] = lambda: None,
) -> list[Found]:
    """Read what the statements leave to the catalog, plan, and run each probe in turn
    (`between` runs before each one)."""
    validated, referenced = data_checks.wanted(prepared)
    known = data_checks.Known(
        catalog.constraints(conn, validated) if validated else {},
        catalog.primary_keys(conn, referenced) if referenced else {},
    )
    probes, unknown = data_checks.plan(prepared, known)
    for item in unknown:
        _unknown(item.item, item.statement, item.table, "", item.reason)
    found: list[Found] = []
    for probe in probes:
        if deadline is not None and time.monotonic() >= deadline:
            _unknown(probe.item, probe.statement, probe.table, probe.rule, "the time budget was spent")
            continue
        between()
        rows = _run(conn, probe, settings.data_timeout)
        if rows:
            found.append(Found(probe, rows))
    return found


def _probe_replica(
    locked: Connection, url: str, prepared: list[Prepared], settings: Settings, deadline: float | None
) -> list[Found]:
    """The probes on the `--data-url` database. Unreachable, every probe is unknown (a replica
    down never stops a deploy); a URL that can never work (a wrong password) is a usage error."""
    # The locked session sits idle meanwhile: a connect within a backoff's length, and a touch
    # between probes, keep it below what --stale-lock-after may be (settings.stale_lock_floor).
    budget = min(settings.connect_timeout, LONGEST_BACKOFF)
    if deadline is not None:
        budget = min(budget, max(deadline - time.monotonic(), 0.0))
    try:
        replica = session.open_connection(url, settings.application_name, budget)
    except UnreachableError as error:
        probes, unknown = data_checks.plan(prepared)
        why = f"the --data-url database could not be reached ({error.fields.get('reason')})"
        for probe in probes:
            _unknown(probe.item, probe.statement, probe.table, probe.rule, why)
        for item in unknown:
            _unknown(item.item, item.statement, item.table, "", why)
        return []
    try:
        return _probe_all(replica, prepared, settings, deadline, lambda: locked.execute("SELECT 1"))
    finally:
        replica.close()


def _run(conn: Connection, probe: data_checks.Probe, timeout: float) -> int | None:
    """How many violating rows (at most LIMIT) the probe found; None when it could not tell."""
    query = probe.query
    if probe.kind != data_checks.CAST:
        query = f"SELECT count(*) FROM ({probe.query} LIMIT {LIMIT}) AS probe"
    try:
        count = catalog.probe(conn, query, pg_duration(timeout))
    except catalog.ProbeFailed as failed:
        if failed.data and probe.kind == data_checks.CAST:
            return 1  # the cast fails on at least one row (which one, and its value, is not said)
        why = (
            f"it did not finish within {timeout:g}s"
            if failed.timed_out
            else f"it could not run (SQLSTATE {failed.sqlstate})"
        )
        _unknown(probe.item, probe.statement, probe.table, probe.rule, why)
        return None
    return 0 if probe.kind == data_checks.CAST else count


def _report(finding: Found, settings: Settings) -> None:
    probe = finding.probe
    emit(
        Event.PREFLIGHT_DATA,
        Level.ERROR if settings.data_preflight == "on" else Level.WARNING,
        version=probe.item.migration.version,
        file=probe.item.migration.label,
        line=probe.statement.line,
        rule=probe.rule,
        table=probe.table,
        columns=list(probe.columns),
        rows=rows(finding.rows),
        fix=f"{probe.fix}; the rows: {mask.statement(probe.query)}",
    )


def _unknown(item: Prepared, statement: Statement, table: str, rule: str, reason: str) -> None:
    emit(
        Event.PREFLIGHT_DATA_UNKNOWN,
        version=item.migration.version,
        file=item.migration.label,
        line=statement.line,
        rule=rule or None,
        table=table,
        reason=f"not checked against the data: {reason}",
    )


def rows(count: int) -> str:
    """A count as reported: exact below LIMIT, `at least LIMIT` at it."""
    return f"at least {count}" if count >= LIMIT else str(count)


def _describe(finding: Found) -> str:
    probe = finding.probe
    where = f"{probe.item.migration.label}:{probe.statement.line}"
    columns = f" ({', '.join(probe.columns)})" if probe.columns else ""
    return f"{where}: {probe.rule} on {probe.table}{columns}: {rows(finding.rows)} row(s); {probe.fix}"
