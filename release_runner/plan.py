"""Pure: migration files + history rows -> the state of each migration and what stands in the way
of applying the pending ones (edited, missing, out of order, unresolved)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

from release_runner.migrations import Migration

APPLIED = "applied"
PENDING = "pending"
CHANGED = "changed"
MISSING = "missing"
UNRESOLVED = "unresolved"
OUT_OF_ORDER = "out-of-order"


@dataclass(frozen=True)
class HistoryRow:
    """One row of the history table, as read back."""

    version: str
    name: str
    checksum: str
    transaction_mode: str
    status: str
    applied_at: Any = None
    duration_ms: int | None = None
    applied_by: str | None = None
    run_id: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Entry:
    """One line of `status`: a file, a history row, or both."""

    version: str
    name: str
    state: str
    migration: Migration | None
    row: HistoryRow | None

    def as_dict(self) -> dict[str, Any]:
        row = self.row
        return {
            "version": self.version,
            "name": self.name,
            "state": self.state,
            "file": str(self.migration.path) if self.migration else None,
            "transaction_mode": row.transaction_mode if row else None,
            "applied_at": row.applied_at.astimezone(UTC).isoformat() if row and row.applied_at else None,
            "duration_ms": row.duration_ms if row else None,
            "error": row.error if row else None,
        }


@dataclass(frozen=True)
class Plan:
    entries: list[Entry]

    @property
    def pending(self) -> list[Migration]:
        return [e.migration for e in self.entries if e.state == PENDING and e.migration]

    @property
    def applied_count(self) -> int:
        return sum(1 for e in self.entries if e.state == APPLIED)

    @property
    def problems(self) -> list[str]:
        """Why the run must be refused; one sentence per migration, naming file and remedy."""
        messages = []
        for entry in self.entries:
            where = str(entry.migration.path) if entry.migration else f"version {entry.version}"
            if entry.state == CHANGED:
                messages.append(
                    f"{where}: edited after it was applied (checksum differs from the history); "
                    "restore the applied text and put the change in a new migration"
                )
            elif entry.state == MISSING:
                messages.append(
                    f"{where} ({entry.name}): applied but its file is gone; restore the file "
                    "from version control"
                )
            elif entry.state == OUT_OF_ORDER:
                messages.append(
                    f"{where}: new, but sorts before a migration already applied; give it a "
                    "version after the newest applied one"
                )
            elif entry.state == UNRESOLVED:
                messages.append(
                    f"{where}: a no-transaction migration that was {entry.row.status if entry.row else '?'} "
                    "and never finished; check the database by hand, then run `release-runner "
                    f"repair --applied {entry.version}` or `repair --forget {entry.version}`"
                )
        return messages


def make_plan(migrations: list[Migration], rows: list[HistoryRow]) -> Plan:
    by_version = {row.version: row for row in rows}
    last_applied = max((i for i, m in enumerate(migrations) if m.version in by_version), default=-1)
    entries = []
    for index, migration in enumerate(migrations):
        row = by_version.pop(migration.version, None)
        if row is None:
            state = OUT_OF_ORDER if index < last_applied else PENDING
        elif row.status != APPLIED:
            state = UNRESOLVED
        elif row.checksum != migration.checksum:
            state = CHANGED
        else:
            state = APPLIED
        entries.append(Entry(migration.version, migration.name, state, migration, row))
    for row in by_version.values():
        entries.append(Entry(row.version, row.name, MISSING, None, row))
    return Plan(entries)
