"""Pure: migration files + history rows -> the state of each migration and what stands in the way
of applying the pending ones (edited, missing, out of order, unresolved)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from enum import StrEnum
from typing import Any

from release_runner.core.history import DeferredRow, HistoryRow
from release_runner.core.migrations import Migration
from release_runner.core.outcome import advice
from release_runner.core.statements import SqlSyntaxError, Statement


class State(StrEnum):
    """What `status` shows for one migration."""

    APPLIED = "applied"
    PENDING = "pending"
    CHANGED = "changed"
    MISSING = "missing"
    UNRESOLVED = "unresolved"
    OUT_OF_ORDER = "out-of-order"
    DEFERRED = "deferred"


@dataclass(slots=True, eq=False, repr=False)
class Entry:
    """One line of `status`: a file, a history row, or both; or a post-deploy file that the
    release phase deferred."""

    version: str
    name: str
    state: State
    migration: Migration | None
    row: HistoryRow | None
    deferred: DeferredRow | None = None

    def as_dict(self) -> dict[str, Any]:
        row = self.row
        return {
            "version": self.version,
            "name": self.name,
            "state": str(self.state),
            "file": str(self.migration.path) if self.migration else None,
            "transaction_mode": str(row.transaction_mode) if row else None,
            "applied_at": row.applied_at.astimezone(UTC).isoformat() if row and row.applied_at else None,
            "duration_ms": row.duration_ms if row else None,
            "error": row.error if row else None,
            "post_deploy": bool(self.migration and self.migration.directives.post_deploy),
            "deferred_by_release": self.deferred.release_id if self.deferred else None,
        }

    def problem(self) -> str | None:
        """Why this entry refuses a run, naming the file and the remedy; None when it does not."""
        where = str(self.migration.path) if self.migration else f"version {self.version}"
        if self.state is State.CHANGED:
            return (
                f"{where}: edited after it was applied (checksum differs from the history); "
                "restore the applied text and put the change in a new migration"
            )
        if self.state is State.MISSING:
            return (
                f"{where} ({self.name}): applied but its file is gone; restore the file from version control"
            )
        if self.state is State.OUT_OF_ORDER:
            return (
                f"{where}: new, but sorts before a migration already applied; give it a "
                "version after the newest applied one"
            )
        if self.state is State.UNRESOLVED:
            status = self.row.status if self.row else "?"
            error = f" ({self.row.error})" if self.row and self.row.error else ""
            return (
                f"{where}: a no-transaction migration that was {status}{error} and never finished. "
                + advice(self.version, self._statements())
            )
        return None

    def _statements(self) -> list[Statement]:
        if self.migration is None:
            return []
        try:
            return self.migration.statements
        except SqlSyntaxError:
            return []


@dataclass(frozen=True, eq=False, repr=False)
class Plan:
    entries: list[Entry]
    foreign_problems: list[str] = field(default_factory=list)
    """drizzle-kit's or Prisma's history rows that match no file."""

    @property
    def pending(self) -> list[Migration]:
        return [e.migration for e in self.entries if e.state is State.PENDING and e.migration]

    @property
    def applied(self) -> int:
        """How many migrations the history records as applied (their files there)."""
        return sum(e.state is State.APPLIED for e in self.entries)

    @property
    def deferred(self) -> dict[str, DeferredRow]:
        """Deferred post-deploy migrations whose files are there, by version."""
        return {e.version: e.deferred for e in self.entries if e.state is State.DEFERRED and e.deferred}

    @property
    def fresh(self) -> bool:
        """No migration applied or deferred yet: no release runs against this schema."""
        return all(e.state is State.PENDING for e in self.entries)

    @property
    def problems(self) -> list[str]:
        """Why the run must be refused; one sentence per migration, naming file and remedy."""
        return [*self.foreign_problems, *(problem for entry in self.entries if (problem := entry.problem()))]


def make_plan(
    migrations: list[Migration],
    rows: list[HistoryRow],
    foreign_problems: list[str] | None = None,
    deferred: dict[str, DeferredRow] | None = None,
) -> Plan:
    """Each file's state. A deferred migration is not out of order for having versions applied
    after it: applying later pre-deploy migrations first is what deferring is for."""
    deferred = deferred or {}
    by_version = {row.version: row for row in rows}
    last_applied = max((i for i, m in enumerate(migrations) if m.version in by_version), default=-1)
    entries = []
    for index, migration in enumerate(migrations):
        row = by_version.pop(migration.version, None)
        if row is None and migration.version in deferred:
            state = State.DEFERRED
        elif row is None:
            state = State.OUT_OF_ORDER if index < last_applied else State.PENDING
        elif not row.applied:
            state = State.UNRESOLVED
        elif row.checksum != migration.checksum:
            state = State.CHANGED
        else:
            state = State.APPLIED
        entries.append(
            Entry(migration.version, migration.name, state, migration, row, deferred.get(migration.version))
        )
    for row in by_version.values():
        entries.append(Entry(row.version, row.name, State.MISSING, None, row))
    return Plan(entries, foreign_problems or [])


@dataclass(frozen=True)
class Readiness:
    """`ready`'s reading of a plan: what keeps a new image from serving, and what is ahead."""

    behind: list[str]
    """Versions this image has that are not applied (post-deploy ones may wait: not here)."""
    problems: list[str]
    """Why the database is not in sync whatever is applied next (edited, unresolved, ...)."""
    ahead: list[str]
    """Applied versions newer than this image's newest file: an older release during a
    rollout reads a database ahead of it, which is not judged."""


def readiness(plan: Plan) -> Readiness:
    newest = max((e.version for e in plan.entries if e.migration), default="")
    ahead = [e.version for e in plan.entries if e.state is State.MISSING and e.version > newest]
    problems = [
        problem for entry in plan.entries if entry.version not in ahead and (problem := entry.problem())
    ]
    behind = [
        e.version
        for e in plan.entries
        if e.state is State.PENDING and e.migration and not e.migration.directives.post_deploy
    ]
    return Readiness(behind, [*plan.foreign_problems, *problems], ahead)
