"""Pure: the vocabulary of the history table, one row per migration, as read back from the
database. The statuses and modes are enums so that the executor, the plan and the SQL that
writes rows share one spelling (they are `str` enums: a value is the text stored in the table).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """`status` column: a transactional migration is only ever `applied` (its row commits with
    it); a no-transaction one is `started` before its statement and `failed` or `applied` after."""

    APPLIED = "applied"
    STARTED = "started"
    FAILED = "failed"


class Mode(StrEnum):
    """`transaction_mode` column: how the runner ran it, or how it came to be recorded."""

    TRANSACTION = "transaction"
    NO_TRANSACTION = "no-transaction"
    BASELINE = "baseline"  # recorded by `baseline`, never run by the runner
    IMPORTED = "imported"  # adopted from drizzle-kit's or Prisma's own history


class RepairAction(StrEnum):
    """What `repair` does to a record: a human's verdict, logged with the reason."""

    APPLIED = "applied"  # a failed or unfinished no-transaction migration was finished by hand
    FORGET = "forget"  # it was undone by hand: the row goes, migrate runs it again
    ACCEPT_CHECKSUM = "accept-checksum"  # an applied file was edited on purpose


@dataclass(slots=True, eq=False, repr=False)
class HistoryRow:
    """One row of the history table, as read back."""

    version: str
    name: str
    checksum: str
    transaction_mode: Mode
    status: Status
    applied_at: datetime | None = None
    duration_ms: int | None = None
    applied_by: str | None = None
    run_id: str | None = None
    error: str | None = None
    image: str | None = None
    """The release (Fly's image reference) whose run wrote the row, when it had one."""

    def as_dict(self) -> dict[str, Any]:
        """The row as `release-runner history --format json` prints it."""
        return {
            "version": self.version,
            "name": self.name,
            "status": str(self.status),
            "transaction_mode": str(self.transaction_mode),
            "applied_at": self.applied_at.isoformat() if self.applied_at else None,
            "duration_ms": self.duration_ms,
            "applied_by": self.applied_by,
            "run_id": self.run_id,
            "release": self.image,
            "error": self.error,
        }

    @property
    def applied(self) -> bool:
        return self.status is Status.APPLIED


@dataclass(slots=True, eq=False, repr=False)
class DeferredRow:
    """A post-deploy migration the release phase left for later: which release deferred it
    first (None when the run had no identity), when, and in which run."""

    version: str
    name: str
    release_id: str | None
    deferred_at: datetime | None = None
    run_id: str | None = None
