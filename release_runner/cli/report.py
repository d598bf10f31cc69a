"""The Markdown report of a run: `--report FILE` on `migrate`, `plan` and `check`, and
$GITHUB_STEP_SUMMARY for `plan` and `check` when GitHub Actions sets it. For a pull request it
says what the migrations will do (pending files, their lock levels and findings, release-phase
refusals, data checks, deferred post-deploy steps, the verification); for an incident channel
what a deploy did (applied, how long, what waited on which blocker, what failed, the closing
line). It is a structlog processor placed after redaction, so it holds exactly what the JSON
lines hold: values masked, secrets redacted."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

from release_runner.cli import closing
from release_runner.cli.lines import Facts, on_object
from release_runner.core.events import Event

_SUMMARY_COMMANDS = ("plan", "check")  # what a reviewer of a pull request reads in CI
_active: list[Record] = []  # the run's record, for `attach` (one run per process)


def targets(command: str, report: Path | None) -> list[tuple[Path, bool]]:
    """Where the report goes: (path, append). `--report FILE` is written whole; GitHub's step
    summary, for `plan` and `check`, is appended to, as GitHub documents it."""
    found = [(report, False)] if report is not None else []
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary and command in _SUMMARY_COMMANDS:
        found.append((Path(summary), True))
    return found


def begin() -> Record:
    """A new record, the active one for `attach`."""
    _active[:] = [Record()]
    return _active[0]


def attach(document: dict[str, Any]) -> None:
    """Give the active record (if any) the `plan` document: the pending files it lists."""
    if _active:
        _active[0].document = document


def write(record: Record, places: list[tuple[Path, bool]]) -> None:
    """Write the report to each place; one that cannot be written is said on stderr, never a
    crash: the run's outcome is already decided and printed."""
    text = record.markdown()
    for path, append in places:
        try:
            with path.open("a" if append else "w", encoding="utf-8") as out:
                out.write(text)
        except OSError as error:
            print(f"release-runner: could not write the report to {path}: {error.strerror}", file=sys.stderr)


class Record:
    """The events of a run as they pass, and the `plan` document when there is one."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.document: dict[str, Any] | None = None

    def __call__(self, _: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        self.events.append(dict(event_dict))
        return event_dict

    def named(self, *events: Event) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") in events]

    def markdown(self) -> str:
        """The report: a heading with the outcome, then a section for each thing that happened."""
        finished = Facts((self.named(Event.RELEASE_FINISHED) or [{}])[-1])
        if self.document is not None:  # what plan found, whether or not it ended in a refusal
            finished.update(pending=self.document["total"], deferred=len(self.document["deferred"]))
        lines = [_HEADING.format_map(finished), "", *self._closing(finished).split("\n")]
        for title, rows in (
            ("Pending migrations", list(self._pending())),
            ("Applied", self._lines(Event.MIGRATION_APPLIED)),
            ("Waited on", list(self._waits())),
            ("Failed", self._lines(Event.MIGRATION_FAILED)),
            ("Deferred to the post-deploy phase", self._lines(Event.MIGRATION_DEFERRED)),
            # plan's findings are listed under their pending migrations: once
            (
                "Preflight",
                [] if self.document else self._lines(Event.PREFLIGHT_ERROR, Event.PREFLIGHT_WARNING),
            ),
            ("Data checks", self._lines(Event.PREFLIGHT_DATA, Event.PREFLIGHT_DATA_UNKNOWN)),
            ("Verification", self._lines(*_VERIFICATION)),
        ):
            if rows:
                lines += ["", f"### {title}", "", *rows]
        return "\n".join(lines) + "\n"

    def _closing(self, finished: dict[str, Any]) -> str:
        """The console's closing sentence (cli/closing.py), its lines as Markdown lines; the
        problems an error lists are the sections below."""
        verified = [closing.VERIFIED[bool(e.get("snapshot"))] for e in self.named(Event.VERIFY_PASSED)]
        headline = next(
            (e.get("headline") for e in self.named(Event.RELEASE_ERROR) if e.get("headline")), None
        )
        started = (self.named(Event.RELEASE_STARTED) or [{}])[0]
        text = closing.sentence(
            finished,
            verified[-1] if verified else None,
            headline.replace("listed above", "listed below") if headline else None,
            bool(started.get("dry_run")),
        )
        return text.replace("\n", "  \n")

    def _lines(self, *events: Event) -> list[str]:
        return [
            _TEMPLATES[Event(e["event"])].format_map(Facts({**e, "about": on_object(e, "`")}))
            for e in self.named(*events)
        ]

    def _pending(self) -> Iterator[str]:
        """Each pending file, then each of its statements (masked) with the locks it takes and
        what preflight found on it."""
        for item in (self.document or {}).get("pending", []):
            yield f"- `{item['file']}`: {item['statements']} statement(s), {item['transaction_mode']}"
            for step in item.get("steps", []):
                locks = ", ".join(step["locks"]) or "no lock on an existing table"
                yield f"  - line {step['line']}: `{step['statement']}` ({locks})"
            for finding in item.get("findings", []):
                about = on_object(finding, "`")
                where = f"line {finding['line']}: {finding['message']}"
                yield f"  - {finding['severity']} {finding['rule']}{about}, {where}"
        for refusal in (self.document or {}).get("refusals", []):
            yield f"- refused: {refusal}"

    def _waits(self) -> Iterator[str]:
        last: dict[str, list[dict[str, Any]]] = {}
        for event in self.named(Event.MIGRATION_WAITING):
            last[str(event.get("version"))] = event.get("blockers") or []
        for version, blockers in last.items():
            named = ", ".join(
                f"pid {b.get('pid')} ({b.get('application_name') or '?'}): {b.get('query') or '?'}"
                for b in blockers
            )
            yield f"- {version} waited on {named or 'a lock'}"


_HEADING = "## release-runner {command}: {status} (exit {exit_code})"
_VERIFICATION = (Event.VERIFY_MISMATCH, Event.VERIFY_PASSED, Event.VERIFY_SKIPPED, Event.VERIFY_NO_SNAPSHOT)
_TEMPLATES = {
    Event.MIGRATION_APPLIED: "- `{file}` in {duration_ms} ms ({transaction_mode}, attempt {attempt})",
    Event.MIGRATION_FAILED: "- `{file}:{line}`: {error} (SQLSTATE {sqlstate}); statement `{statement}`",
    Event.MIGRATION_DEFERRED: "- `{file}`: {reason}",
    Event.PREFLIGHT_ERROR: "- error `{file}:{line}` {rule}{about}: {message}",
    Event.PREFLIGHT_WARNING: "- warning `{file}:{line}` {rule}{about}: {message}",
    Event.PREFLIGHT_DATA: "- {rule} `{file}:{line}` on {table}: {rows} row(s); {fix}",
    Event.PREFLIGHT_DATA_UNKNOWN: "- unknown `{file}:{line}` on {table}: {reason}",
    Event.VERIFY_MISMATCH: "- {describe}",
    Event.VERIFY_PASSED: "- verified: {checked} object(s) as expected (snapshot: {snapshot})",
    Event.VERIFY_SKIPPED: "- not verified: {reason}",
    Event.VERIFY_NO_SNAPSHOT: "- {reason}",
}
