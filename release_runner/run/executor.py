"""Applying pending migrations in order, one at a time: the time budget, retries on transient
errors, reconnecting and reading the history back when the connection was lost. Emits the
`migration.*` events; what a migration whose end was not seen left, and the advice a failure
ends with, are settle.py's."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NoReturn

from tenacity import RetryCallState

from release_runner.core.errors import Interrupted, MigrationFailed, TimeBudgetSpent
from release_runner.core.events import Event
from release_runner.core.history import HistoryRow, Status
from release_runner.core.outcome import Outcome
from release_runner.core.preflight import Prepared
from release_runner.core.settings import LONGEST_BACKOFF
from release_runner.db import execute
from release_runner.db.connection import DatabaseError, broken
from release_runner.db.execute import MigrationError
from release_runner.db.history import RunContext
from release_runner.db.watcher import Watcher
from release_runner.run import interrupts, retrying, settle
from release_runner.run.log import emit
from release_runner.run.retrying import Deadline
from release_runner.run.session import Session, require_url


def apply_all(
    session: Session,
    prepared: list[Prepared],
    context: RunContext,
    deadline: float | None,
) -> None:
    """Apply in order on the session's connection (replaced by the session on a reconnect).
    `deadline` (a time.monotonic() value) ends the run: no migration starts after it, and one
    still running is cancelled. After a reconnect the history is read again: another runner
    may have taken the lock meanwhile and applied what was pending, and a failover to a
    standby that had not caught up may have lost what this run committed (_Committed)."""
    settings = session.settings

    def report(version: str, blockers: list[dict[str, Any]]) -> None:
        emit(Event.MIGRATION_WAITING, version=version, blockers=blockers)

    watcher = Watcher(require_url(settings), settings.application_name, deadline, report)
    queue, committed = list(prepared), _Committed(session)
    session.after_reconnect = committed.check
    try:
        while queue:
            item = queue.pop(0)
            interrupts.check()  # a fleet's interruption: no migration starts after it
            row = committed.applied.get(item.migration.version)
            if row is not None:
                _already_applied(item, context, row.run_id)
                continue
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeBudgetSpent(
                    f"time budget of {settings.time_budget:g}s spent before {item.migration.label}; "
                    f"{len(committed.ours)} applied, {len(queue) + 1} pending; deploy again "
                    "(or run `release-runner migrate`) to continue",
                )
            try:
                _Migration(session, item, context, watcher, deadline).run()
            except LostCommits as lost:
                queue = committed.requeue(lost.items, item) + queue
                continue
            committed.ours.append(item)
    finally:
        session.after_reconnect = None
        watcher.close()


class LostCommits(Exception):
    """After a reconnect, the server lacks migrations this run committed (`items`)."""

    def __init__(self, items: list[Prepared]) -> None:
        super().__init__(", ".join(item.migration.label for item in items))
        self.items = items


@dataclass(eq=False, repr=False)
class _Committed:
    """What this run committed, checked against the history after every reconnect (`check`,
    the session's after_reconnect): another runner may have applied what was pending meanwhile
    (`applied`), and a failover to a standby that had not caught up loses commits this run
    made; those are named (`migration.lost`) and applied again before anything else."""

    session: Session
    applied: dict[str, HistoryRow] = field(default_factory=dict)
    ours: list[Prepared] = field(default_factory=list)

    def check(self) -> None:
        self.applied = {r.version: r for r in self.session.history.read(self.session.conn) if r.applied}
        gone = [item for item in self.ours if item.migration.version not in self.applied]
        if gone:
            raise LostCommits(gone)

    def requeue(self, gone: list[Prepared], current: Prepared) -> list[Prepared]:
        """Report the lost ones; they run again first, then the one that was running (a
        transaction: its row tells whether it committed). A no-transaction migration among them
        is never run again blindly: the run stops, saying so."""
        labels = ", ".join(item.migration.label for item in gone)
        for item in [*gone, current]:
            if not item.transactional:
                raise MigrationFailed(
                    f"the server this run reconnected to lacks what it committed ({labels}: a failover "
                    f"to a standby that had not caught up), and {item.migration.label} runs without a "
                    "transaction, so it is not run again blindly; check what the server has, then "
                    "`release-runner repair` or deploy again"
                )
        for item in gone:
            emit(
                Event.MIGRATION_LOST,
                version=item.migration.version,
                name=item.migration.name,
                file=item.migration.label,
                reason="applied by this run, but the server it reconnected to does not have it (a "
                "failover to a standby that had not caught up): it is applied again",
            )
        self.ours = [item for item in self.ours if item not in gone]
        return [*gone, current]


def _already_applied(item: Prepared, context: RunContext, run_id: str | None) -> None:
    ours = run_id == context.run_id
    emit(
        Event.MIGRATION_ALREADY_APPLIED,
        version=item.migration.version,
        name=item.migration.name,
        file=item.migration.label,
        ours=ours,
        reason="its COMMIT had landed before the connection was lost"
        if ours
        else f"another runner (run_id {run_id}) applied it while this one was reconnecting",
    )


@dataclass(eq=False, repr=False)
class _Migration:
    """One migration and its attempts: how many were made, whether its outcome was already
    reported, and whether the last failure came before the file's statement was sent. Each
    attempt runs under a tenacity Retrying (run/retrying.py) that retries transient failures
    within --retries and the time budget."""

    session: Session
    item: Prepared
    context: RunContext
    watcher: Watcher
    deadline: float | None
    count: int = 0
    reported: bool = False
    statement_unsent: bool = False
    started: float = field(default_factory=time.monotonic)

    @cached_property
    def facts(self) -> dict[str, str]:
        """What every event of this migration says about it."""
        migration = self.item.migration
        return {"version": migration.version, "name": migration.name, "file": migration.label}

    def run(self) -> None:
        """Announce it, apply it with retries, and report how it ended."""
        self.announce()
        settings = self.session.settings
        try:
            retrying.policy(
                self.retryable,
                self.before_sleep,
                wait=retrying.equal_jitter(0.5, LONGEST_BACKOFF),
                deadline=Deadline(self.deadline),
                attempts=settings.retries,
            )(self.attempt)
            self.applied()
        except MigrationError as error:
            settle.fail(error, self.item, self.watcher, self.facts, self.count, settings.time_budget)
        except execute.IncompleteRun as error:
            self.incomplete(error)
        except execute.GroundLost as lost:
            if lost.ran is Status.APPLIED and lost.recorded:
                self.applied()  # a no-transaction statement that ran, and its row says so
            else:
                emit(Event.MIGRATION_FAILED, **self.facts, error=lost.message, attempt=self.count)
            raise MigrationFailed(f"{self.item.migration.label}: {lost.message}") from None
        except Interrupted as interrupted:
            interrupted.outcome = self.left_by_interruption()
            raise

    def incomplete(self, error: execute.IncompleteRun) -> NoReturn:
        """The server ran other parts than were sent. Its history row says whether the message's
        COMMIT landed: then the migration is applied (reported so), and the run still stops,
        since what ran may not be what the file says."""
        label = self.item.migration.label
        row = self.session.history.row(self.session.conn, self.item.migration.version)
        if row is not None and row.applied and row.run_id == self.context.run_id:
            self.applied()
            raise MigrationFailed(
                f"{label}: committed and recorded as applied, but {error}; what ran may differ from "
                "the file: check what it changed"
            )
        emit(Event.MIGRATION_FAILED, **self.facts, error=str(error), attempt=self.count)
        raise MigrationFailed(f"{label}: {error}; deploy again once the file is fixed")

    def announce(self) -> None:
        item = self.item
        if item.unwrapped:
            emit(
                Event.MIGRATION_UNWRAPPED,
                **self.facts,
                reason="dropped the file's own BEGIN/COMMIT; the runner's transaction covers the whole file",
            )
        emit(
            Event.MIGRATION_STARTED,
            **self.facts,
            transaction_mode=item.transaction_mode,
            **({"automatic": True} if item.automatic_no_transaction else {}),
            statements=len(item.statements),
            **({"locks_ahead": [lock.describe() for lock in item.locks_ahead]} if item.locks_ahead else {}),
        )

    def applied(self) -> None:
        """Report it applied, once. Reported and marked as one step: a signal between the two
        would leave the summary one short (the randomized fault test found that window)."""
        with interrupts.deferred():
            if not self.reported:
                emit(
                    Event.MIGRATION_APPLIED,
                    **self.facts,
                    duration_ms=round((time.monotonic() - self.started) * 1000),
                    attempt=self.count,
                    transaction_mode=self.item.transaction_mode,
                )
                self.reported = True

    def attempt(self) -> None:
        """One attempt; after a lost connection, first read back what the last one left."""
        self.count += 1
        if broken(self.session.conn) and self.applied_meanwhile():
            return
        session, item = self.session, self.item
        settings = session.settings
        lock_timeout = item.lock_timeout(settings.lock_timeout)
        statement_timeout = item.statement_timeout(settings.statement_timeout)
        try:
            with self.watcher.watching(item.migration.version, session.conn, lock_timeout):
                execute.apply(session.conn, item, self.context, lock_timeout, statement_timeout)
        except execute.UnrecordedOutcome as unrecorded:
            # The statement's outcome is known; only writing it down was cut short.
            version = item.migration.version
            session.history.record_outcome(session.reconnect(), version, unrecorded.status, unrecorded.error)
            if unrecorded.failure is not None:
                raise unrecorded.failure from None
        except MigrationError as error:
            interrupts.check()  # cancelled by a fleet's interruption: it ends as a signal would
            if item.transactional or not (error.connection_lost and error.statement_sent):
                raise
            # The connection died while the statement ran: ask the catalog what it did.
            why = "the connection was lost while it ran"
            conn = session.reconnect()
            if (
                settle.settle(conn, session.history, item.migration, item.statements, why)
                is not Outcome.APPLIED
            ):
                raise
            return
        self.applied()

    def applied_meanwhile(self) -> bool:
        """Reconnect and read the row back: True when it is applied already (our COMMIT
        landed, or another runner did it), which is reported and never applied twice."""
        current = self.session.reconnect()
        version = self.item.migration.version
        row = self.session.history.row(current, version)
        if row is not None and row.applied:
            with interrupts.deferred():
                _already_applied(self.item, self.context, row.run_id)
                self.reported = True
            return True
        if row is not None and self.statement_unsent:
            # A no-transaction migration whose `started` row committed, but whose statement
            # never left this process: nothing ran, so the row can go.
            self.session.history.delete_row(current, version)
        return False

    def retryable(self, error: BaseException) -> bool:
        """A transient failure; a no-transaction statement is never retried blindly: only when
        it was never sent, or when the catalog proved it never took effect (its row is gone)."""
        return (
            isinstance(error, MigrationError)
            and error.retry_reason is not None
            and (self.item.transactional or not error.statement_sent or self.forgotten())
        )

    def forgotten(self) -> bool:
        """True when settling removed the row of a no-transaction migration."""
        return self.session.history.row(self.session.conn, self.item.migration.version) is None

    def before_sleep(self, retry_state: RetryCallState) -> None:
        """tenacity's hook before each wait: the `migration.retry` event."""
        error = retrying.failure(retry_state)
        assert isinstance(error, MigrationError)
        self.statement_unsent = not error.statement_sent
        emit(
            Event.MIGRATION_RETRY,
            **self.facts,
            attempt=retry_state.attempt_number,
            sqlstate=error.sqlstate,
            reason=error.retry_reason,
            error=error.message,
            delay_ms=round(retrying.delay(retry_state) * 1000),
            blockers=self.watcher.last_blockers or None,
        )

    def left_by_interruption(self) -> str:
        """What the summary says the interrupted migration left."""
        try:
            return settle.after_interrupt(self.session, self.item, self.reported, self.applied)
        except DatabaseError:
            # The signal came between sending a statement and reading its result: the
            # connection cannot answer now. Say so rather than crash with its error.
            return (
                f"{self.item.migration.label} was running and what it left could not be read back; "
                "`release-runner status` shows what committed"
            )
