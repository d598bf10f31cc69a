"""How far a run got, derived from its events: what the summary line reports whatever happened,
including after an interruption. A structlog processor (the CLI puts it in the chain): it sees
every event on its way to the renderer and passes it on unchanged. In a fleet, the events of a
target (they carry `target`) are counted by that target's own Progress, which its
`target.finished` reports."""

from __future__ import annotations

import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from release_runner.core.events import Event


@dataclass(eq=False, repr=False)
class Progress:
    """Counts the migrations of the target database only, from the moment `history.validated`
    announced its plan: a scratch replay's (`check`, `snapshot`, `baseline`) are not what a
    summary's `applied` means."""

    applied: list[str] = field(default_factory=list)
    pending: int = 0
    deferred: int = 0
    migration: str | None = None
    started: float = field(default_factory=time.monotonic)
    locked: bool = False
    """The runner lock was taken: an interruption's summary says it is released."""
    validated: bool = False
    """`history.validated` was seen: what follows is the target database's, not a replay's."""
    targets: dict[str, Progress] = field(default_factory=dict)
    """In a fleet, each target's own Progress, by name."""

    def of(self, name: str) -> Progress:
        """The Progress of one target of a fleet."""
        return self.targets.setdefault(name, Progress())

    def summary(self, command: str | None, status: str, code: int, **facts: Any) -> dict[str, Any]:
        """The facts of `release.finished`."""
        return {
            "command": command,
            "status": status,
            "exit_code": code,
            "applied": len(self.applied),
            "pending": self.pending,
            "deferred": self.deferred,
            "migration": self.migration,
            "duration_ms": round((time.monotonic() - self.started) * 1000),
            **facts,
        }

    def __call__(self, _: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        name = event_dict.get("target")
        (self if name is None else self.of(str(name))).observe(event_dict)
        return event_dict

    def observe(self, facts: Mapping[str, Any]) -> None:
        """Count one event."""
        event = facts.get("event")
        if event in (Event.LOCK_ACQUIRED, Event.LOCK_TAKEN_OVER):
            self.locked = True
        elif event == Event.HISTORY_VALIDATED:
            self.pending = int(facts["pending"])
            self.validated = True
        elif not self.validated:
            pass
        elif event == Event.MIGRATION_DEFERRED:
            self.deferred += 1
        elif event == Event.MIGRATION_STARTED:
            self.migration = str(facts["file"])  # named in the summary if it fails or is cut short
        elif event == Event.MIGRATION_LOST:
            # Its commit is gone with the server that had it (a failover): it is pending again.
            if str(facts["version"]) in self.applied:
                self.applied.remove(str(facts["version"]))
            self.pending += 1
        elif event in (Event.MIGRATION_APPLIED, Event.MIGRATION_ALREADY_APPLIED):
            # Counted as applied by this run only if this run's COMMIT did it.
            if event == Event.MIGRATION_APPLIED or facts.get("ours"):
                self.applied.append(str(facts["version"]))
            self.pending -= 1
            self.migration = None
