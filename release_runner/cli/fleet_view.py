"""The terminal view of a fleet: one line per target as it ends, a live line of the targets done,
running (by name), failed and left, and a closing sentence that names every target that did not
end ok. The targets' own events (a migration applied on `eu-1`...) stay in the JSON lines: on a
terminal, a hundred targets' migrations would bury what a person needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from release_runner.cli.lines import seconds
from release_runner.core.events import Event

Paint = Callable[[str, str], str]


class FleetView:
    """State of the fleet as its events arrive; `render` gives the line an event needs."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.failed = 0
        self.running: list[str] = []
        self.closed = False

    @property
    def shown(self) -> bool:
        """A fleet's live line may be on the screen."""
        return self.total > 0

    @property
    def active(self) -> bool:
        """The fleet runs: its live line is to be redrawn."""
        return self.shown and not self.closed

    def wants(self, event: Event, facts: dict[str, Any]) -> bool:
        """Whether the event is the fleet's to render."""
        ends = self.shown and event is Event.RELEASE_FINISHED
        return event is Event.FLEET_STARTED or "target" in facts or ends

    def render(self, event: Event, facts: dict[str, Any], paint: Paint) -> str | None:
        if event is Event.FLEET_STARTED:
            self.total = int(facts.get("targets") or 0)
            canary = f"canary {facts.get('canary')}, then " if facts.get("canary") else ""
            return paint(f"fleet: {self.total} targets; {canary}{facts.get('parallel')} at a time", "dim")
        if event is Event.RELEASE_FINISHED:
            self.closed = True
            return self.closing(facts, paint)
        name = str(facts.get("target"))
        if event is not Event.TARGET_FINISHED:
            if name not in self.running:
                self.running.append(name)
            return None
        if name in self.running:
            self.running.remove(name)
        self.done += 1
        return self.finished(name, facts, paint)

    def finished(self, name: str, facts: dict[str, Any], paint: Paint) -> str:
        status, took = facts.get("status"), seconds(float(facts.get("duration_ms") or 0))
        if status == "ok":
            applied = facts.get("applied") or 0
            return f"{paint('✓', 'green')} {name} ok: applied {applied} {paint(took, 'dim')}"
        if status == "skipped":
            return paint(f"- {name} skipped: {facts.get('error')}", "yellow")
        self.failed += 1
        return paint(f"✗ {name} {status} (exit {facts.get('exit_code')}): {facts.get('error')}", "red")

    def live(self, paint: Paint) -> str:
        """The line redrawn in place while the fleet runs."""
        running = ", ".join(self.running[:6]) + (" …" if len(self.running) > 6 else "")
        left = self.total - self.done - len(self.running)
        failed = f"; {self.failed} not ok" if self.failed else ""
        return f"{paint(f'[{self.done}/{self.total}]', 'dim')} running: {running or '-'}{failed}; {left} left"

    def closing(self, facts: dict[str, Any], paint: Paint) -> str:
        counts: dict[str, int] = facts.get("targets") or {}
        took = seconds(float(facts.get("duration_ms") or 0))
        ok = counts.get("ok", 0)
        summary = f"{facts.get('command')}: {ok} of {sum(counts.values())} targets ok in {took}"
        if facts.get("exit_code") == 0:
            return paint(f"{summary}; {facts.get('applied', 0)} migrations applied", "green")
        not_ok = facts.get("not_ok") or []
        return paint(f"{summary} (exit {facts.get('exit_code')}); not ok: {', '.join(not_ok)}", "red")
