"""Pure: what `migrate` would do now, as the document `plan` prints: the pending migrations as
preflight prepared them, what waits for the post-deploy phase, and what would refuse."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from release_runner.core import phases
from release_runner.core import plan as plan_module
from release_runner.core.preflight import Prepared
from release_runner.core.settings import Settings


@dataclass(eq=False, repr=False)
class PlanReport:
    """What `migrate` would do now: pending migrations as prepared, and refusals."""

    plan: plan_module.Plan
    prepared: list[Prepared]
    settings: Settings
    phase: phases.Phase
    data: list[dict[str, Any]] = field(default_factory=list)
    """What the data checks found: the rows a pending statement would refuse."""

    def as_dict(self) -> dict[str, Any]:
        items = [
            {
                "version": item.migration.version,
                "name": item.migration.name,
                "file": item.migration.label,
                "transaction_mode": item.transaction_mode,
                "statements": len(item.statements),
                "locks": [lock.describe() for lock in item.locks_ahead],
                "lock_timeout_ms": round(item.lock_timeout(self.settings.lock_timeout) * 1000),
                "findings": [{"severity": f.severity, **f.as_event()} for f in item.findings],
                "steps": [
                    {
                        "line": statement.line,
                        "column": statement.column,
                        "statement": statement.head,
                        "locks": [lock.describe() for lock in item.locks_of([statement])],
                    }
                    for statement in item.statements
                ],
            }
            for item in self.prepared
        ]
        release_id = self.settings.release_id
        deferred = [
            {
                "version": m.version,
                "name": m.name,
                "file": m.label,
                "reason": phases.defer_reason(release_id, self.plan.deferred.get(m.version)),
            }
            for m in self.phase.defer
        ]
        return {
            "phase": self.phase.name,
            "release_id": release_id,
            "pending": items,
            "deferred": deferred,
            "released": [{"version": v, "reason": why} for v, why in self.phase.released.items()],
            "total": len(items),
            "refusals": self.plan.problems,
            "errors": sum(len(item.errors) for item in self.prepared),
            "warnings": sum(len(item.warnings) for item in self.prepared),
            "data": self.data,
        }
