"""The terminal output: what a person at a prompt wants from a run, not a log. One short line
per migration with its duration, a live counter (`[250/500]`, with the running migration's
elapsed time redrawn while it runs), blockers named while it waits, the problems in full, and a
closing summary in words. Colour on a terminal unless NO_COLOR is set or --no-color is given.

Chosen by `--log-format console`, and by `auto` when stdout is a terminal. It is both the final
structlog processor (an event in, its line out) and the logger structlog wraps (it writes the
line, then redraws the live one), so the ticker thread and the lines never interleave. Every
value has passed the same redaction processor as the JSON lines."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from release_runner.cli import closing, drift_table
from release_runner.cli.fleet_view import FleetView
from release_runner.cli.lines import Facts, LineWriter, on_object, seconds
from release_runner.core.events import Event, Level
from release_runner.core.statements import shortened

# What every event carries for the JSON lines; a person does not need it on each line.
_CONTEXT = {"event", "level", "timestamp", "run_id", "app", "machine", "image"}
_COLOURS = {"green": "32", "red": "31", "yellow": "33", "dim": "2", "bold": "1"}
# Events a person does not need on a terminal: the summary and the lines around them say it.
_QUIET = {
    Event.LOCK_ACQUIRED,
    Event.MIGRATION_STARTED,
    Event.SCRATCH_READY,
    Event.CHECK_REPLAYED,
    Event.VERIFY_ANOTHER_DATABASE,  # the summary's error says it, once
    Event.VERIFY_MISMATCH,  # gathered by __call__ into one table (cli/drift_table.py)
}


def colour_wanted(stream: TextIO, no_color: bool) -> bool:
    """Colour on a terminal, unless --no-color or NO_COLOR (https://no-color.org) says not."""
    return not no_color and not os.environ.get("NO_COLOR") and stream.isatty()


class Console(LineWriter):
    """Renders events as lines a person reads; see the module docstring."""

    def __init__(self, stream: TextIO, colour: bool) -> None:
        super().__init__(stream)
        self.colour = colour
        self.live = stream.isatty()
        self.total = 0
        self.done = 0
        self.command: str | None = None
        self.dry_run = False
        self.headline: str | None = None
        """The error without the problems its events listed above (release.error's headline)."""
        self.verified: str | None = None
        """What verification checked, for the closing sentence."""
        self.running: tuple[str, float] | None = None  # label, started
        self.status: str | None = None
        """What the run waits for or retries, on the live line (a terminal) until it moves on."""
        self.differences: list[tuple[bool, dict[str, Any]]] = []
        """verify.mismatch facts (and whether each fails) not shown yet: one table for all."""
        self.drawn = False
        """A live line is on the screen, to be wiped before the next line."""
        self.last_status: str | None = None
        """The status line printed last where there is no live line: the same one is not repeated."""
        self.lock = threading.Lock()
        self.ticker: threading.Thread | None = None
        self.fleet = FleetView()

    def paint(self, text: str, colour: str) -> str:
        return f"\033[{_COLOURS[colour]}m{text}\033[0m" if self.colour else text

    @staticmethod
    def plain(text: str) -> str:
        """The text without its colour codes: what takes room on the screen."""
        return re.sub(r"\033\[[0-9;]*m", "", text)

    def counter(self) -> str:
        return f"[{self.done + 1}/{self.total}]" if self.total else ""

    def clear_live(self) -> None:
        """Wipe the live line, so that a finished line can take its place."""
        if self.drawn:
            self.drawn = False
            try:
                self.stream.write("\r\033[K")
            except (OSError, ValueError):
                self.lost = True

    def redraw(self) -> None:
        """The live line of the running migration and what it waits for, or of a fleet's
        targets (a terminal only), without a newline, cut to the terminal's width (a wrapped
        line could not be redrawn in place)."""
        if not self.live or not (self.running or self.status or self.fleet.active):
            return
        if self.fleet.active:
            line = self.fleet.live(self.paint)
        else:
            line = ""
            if self.running:  # the file's name only: the ✓ line that replaces it gives the path
                label, started = self.running
                elapsed = seconds((time.monotonic() - started) * 1000)
                name = label.rsplit("/", 1)[-1]
                line = f"{self.paint(self.counter(), 'dim')} {name} {self.paint(elapsed, 'dim')}"
            if self.status:
                room = shutil.get_terminal_size().columns - len(self.plain(line)) - 4
                status = self.paint(shortened(self.status, room), "yellow")
                line = f"{line} · {status}" if line else status
        try:
            self.stream.write(f"\r\033[K{line}")
            self.stream.flush()
            self.drawn = True
        except (OSError, ValueError):
            self.lost = True

    def tick(self) -> None:
        while True:
            time.sleep(0.5)
            with self.lock:
                if self.running is None:
                    self.ticker = None
                    return
                self.redraw()

    def __call__(self, _: Any, __: str, event_dict: MutableMapping[str, Any]) -> str:
        """The final processor: the event's line, or DropEvent for an event with none."""
        event, level = Event(event_dict["event"]), Level(event_dict["level"])
        facts = {key: value for key, value in event_dict.items() if key not in _CONTEXT}
        with self.lock:
            if self.fleet.wants(event, facts):
                fleet_line = self.fleet.render(event, facts, self.paint)
                if fleet_line is None:
                    self.redraw()
                    raise structlog.DropEvent
                return fleet_line
            text = self.render(event, level, facts)
            if event in _STATUS:
                self.show_status(text or "")
            if event in _STATUS_ENDS:  # a later wait, even on the same blocker, is news again
                self.status = self.last_status = None
            if event is Event.MIGRATION_STARTED:
                self.running = (str(facts.get("file")), time.monotonic())
                self.redraw()
                if self.live and self.ticker is None:
                    self.ticker = threading.Thread(target=self.tick, daemon=True)
                    self.ticker.start()
                raise structlog.DropEvent
            if event is Event.VERIFY_MISMATCH:  # gathered, then shown as one table
                self.differences.append((level is Level.ERROR, facts))
                raise structlog.DropEvent
            if self.differences:
                table = drift_table.render(self.differences, self.paint)
                self.differences = []
                text = table if text is None else f"{table}\n{text}"
            if event is Event.RELEASE_FINISHED and self.running is not None:
                # Ended while a migration ran (a signal, a crash): it gets its own line, and the
                # live line stops before the summary, never to be drawn after it.
                ended = f"{self.paint('✗', 'red')} {self.running[0]} {facts.get('status')}"
                text = f"{ended}\n{text}"
            if event in (
                Event.MIGRATION_APPLIED,
                Event.MIGRATION_FAILED,
                Event.MIGRATION_ALREADY_APPLIED,
                Event.RELEASE_FINISHED,
            ):
                self.clear_live()
                self.running = None
                self.done += event in (Event.MIGRATION_APPLIED, Event.MIGRATION_ALREADY_APPLIED)
            if text is None:
                raise structlog.DropEvent
            return text

    def show_status(self, text: str) -> None:
        """Waiting and retrying are one status line: on a terminal the live line, updated in
        place; elsewhere a line, printed only when it says something new."""
        text = " ".join(self.plain(text).split())
        if self.live:
            self.status = text
            self.redraw()
            raise structlog.DropEvent
        if text == self.last_status:
            raise structlog.DropEvent
        self.last_status = text

    def msg(self, message: str) -> None:
        """The wrapped logger: the line in place of the live one, then the live one again."""
        with self.lock:
            self.clear_live()
            self.line(message)
            self.redraw()

    info = warning = error = msg

    def render(self, event: Event, level: Level, facts: dict[str, Any]) -> str | None:
        """The line for one event; None for events that need none."""
        if event is Event.RELEASE_STARTED:
            self.command = str(facts.get("command"))
            self.dry_run = bool(facts.get("dry_run"))
            source = (
                f" (database from {facts['database_url_source']})" if facts.get("database_url_source") else ""
            )
            command = f"release-runner {facts.get('version')} {facts.get('command')}"
            return self.paint(f"{command}: {facts.get('migrations')}{source}", "bold")
        if event is Event.DB_CONNECTED:
            version = (str(facts.get("server_version") or "?").split() or ["?"])[0]
            return self.paint(f"connected: PostgreSQL {version}", "dim")
        if event is Event.HISTORY_VALIDATED:
            self.total = int(facts.get("pending") or 0)
            deferred = f", {facts['deferred']} deferred" if facts.get("deferred") else ""
            return self.paint(f"{facts.get('applied', 0)} applied, {self.total} to apply{deferred}", "dim")
        if event is Event.MIGRATION_APPLIED:
            took = seconds(float(facts.get("duration_ms") or 0))
            attempts = int(facts.get("attempt") or 1)
            duration = self.paint(f"{took}, attempt {attempts}" if attempts > 1 else took, "dim")
            return f"{self.paint('✓', 'green')} {self.counter()} {facts.get('file')} {duration}"
        if event is Event.MIGRATION_FAILED:
            return self.failure(facts)
        if event is Event.MIGRATION_WAITING:
            blockers = _blockers(facts.get("blockers") or [])
            return self.paint(f"waiting for a lock held by {blockers}", "yellow")
        if event is Event.MIGRATION_DEFERRED:
            return f"{self.paint('⏸', 'yellow')} {facts.get('file')} deferred: {facts.get('reason')}"
        if event is Event.LOCK_WAITING:
            return self.paint(
                "waiting for another runner: " + _blockers(facts.get("holders") or []), "yellow"
            )
        if event in (Event.PREFLIGHT_WARNING, Event.PREFLIGHT_ERROR):
            # plan's document lists them under their statements: each fact printed once
            return None if self.command == "plan" or self.dry_run else self.finding(level, facts)
        if event is Event.VERIFY_PASSED:
            self.verified = closing.VERIFIED[bool(facts.get("snapshot"))]
            return None
        if event is Event.RELEASE_ERROR:
            self.headline = facts.get("headline")
            return None
        if event is Event.RELEASE_FINISHED:
            return self.summary(facts)
        if event in _QUIET:
            return None
        colour = {Level.ERROR: "red", Level.WARNING: "yellow"}.get(level, "dim")
        if event in _WORDS:
            return self.paint(_WORDS[event].format_map(Facts(facts)), colour)
        pairs = " ".join(f"{key}={value}" for key, value in facts.items() if value is not None)
        return self.paint(f"{event} {pairs}".rstrip(), colour)

    def failure(self, facts: dict[str, Any]) -> str:
        """A failed migration: where and why, then the failing statement (masked, as the event
        carries it) and the server's detail and hint under it."""
        where = ":".join(str(facts[k]) for k in ("file", "line", "column") if facts.get(k) is not None)
        message = f"{self.paint('✗', 'red')} {where}: {facts.get('error')} (SQLSTATE {facts.get('sqlstate')})"
        return message + "".join(f"\n    {facts[k]}" for k in ("statement", "detail", "hint") if facts.get(k))

    def finding(self, level: Level, facts: dict[str, Any]) -> str:
        """A preflight finding: where, the rule and its object, what it finds, and the fix."""
        colour = "red" if level is Level.ERROR else "yellow"
        where = f"{facts.get('file')}:{facts.get('line')}:{facts.get('column')}"
        rule = f"{facts.get('rule')}{on_object(facts)}"
        fix = f"\n    {facts.get('fix')}"
        return f"{self.paint(str(level), colour)} {where} {rule}: {facts.get('message')}{fix}"

    def summary(self, facts: dict[str, Any]) -> str:
        """The closing sentence (cli/closing.py), green when the command ended well."""
        text = closing.sentence(facts, self.verified, self.headline, self.dry_run)
        return self.paint(text, "green" if facts.get("exit_code") == 0 else "red")


# Every other event in words: a sentence each, its facts filled in (cli/lines.Facts).
_WORDS = {
    Event.DB_CONNECT_RETRY: "connecting: retry {attempt} in {delay_ms} ms ({reason})",
    Event.MIGRATION_RETRY: "retry {attempt} in {delay_ms} ms: {reason} ({sqlstate})",
    Event.MIGRATIONS_IGNORED: "{file}: {reason}",
    Event.LOCK_TAKEN_OVER: "took the runner lock over: {reason}",
    Event.HISTORY_IMPORTED: "imported {count} migration(s) from {source}'s history ({first} to {last})",
    Event.HISTORY_REPAIRED: "history of {version}: {action}, by {by} ({reason})",
    Event.PREFLIGHT_DATA: "{file}:{line} data check {rule} on {table}: {rows} row(s) would refuse it"
    "\n    {fix}",
    Event.PREFLIGHT_DATA_UNKNOWN: "{file}:{line} on {table}: {reason}",
    Event.MIGRATION_UNWRAPPED: "  {file}: {reason}",
    Event.MIGRATION_LOST: "✗ {file}: {reason}",
    Event.MIGRATION_RECONCILED: "  {file}: {outcome} ({reason})",
    Event.MIGRATION_CREATED: "created {file}",
    Event.MIGRATION_RELEASED: "  {version} runs now: {reason}",
    Event.VERIFY_NO_SNAPSHOT: "{reason}",
    Event.VERIFY_SKIPPED: "{reason}",
    Event.VERIFY_SERVER_DIFFERS: "{reason}",
    Event.SCHEMA_CREATED: "created schema {schema}: {reason}",
    Event.SNAPSHOT_WRITTEN: "wrote {file} ({objects} objects)",
    Event.BASELINE_FORCED: "baseline forced up to {version}: {reason}",
    Event.BASELINE_RECORDED: "recorded {count} migration(s) up to {version} as applied (baseline)",
    Event.RELEASE_CRASHED: "crashed: {error} (at {where})",
    Event.HISTORY_REFUSED: "refused: {reason}",
    Event.MIGRATION_ALREADY_APPLIED: "✓ {file} already applied: {reason}",
}
# What the run waits for or retries: one status line (Console.show_status), until one of
# _STATUS_ENDS says the run moved on.
_STATUS = {Event.MIGRATION_WAITING, Event.LOCK_WAITING, Event.MIGRATION_RETRY, Event.DB_CONNECT_RETRY}
_STATUS_ENDS = {
    Event.DB_CONNECTED,
    Event.LOCK_ACQUIRED,
    Event.LOCK_TAKEN_OVER,
    Event.MIGRATION_STARTED,
    Event.MIGRATION_APPLIED,
    Event.MIGRATION_FAILED,
    Event.MIGRATION_ALREADY_APPLIED,
    Event.RELEASE_FINISHED,
}
_HIDDEN_QUERY = "its query is hidden: the runner's role needs pg_read_all_stats to see it"


def _blockers(sessions: list[dict[str, Any]]) -> str:
    """Who holds what a run waits for: pid, application, state and query, in words even where
    the server hides them from the runner's role."""
    return "; ".join(_blocker(session) for session in sessions)


def _blocker(session: dict[str, Any]) -> str:
    about = [session.get("application_name"), session.get("state") or "state hidden"]
    query = f": {_query(session['query'])}" if session.get("query") else ""
    return f"pid {session.get('pid')} ({', '.join(part for part in about if part)}){query}"


def _query(query: str) -> str:
    return _HIDDEN_QUERY if query == "<insufficient privilege>" else query
