"""Rendering events for people and machines, and keeping secrets out of what is rendered.

`JsonLines` writes one JSON object per event (what Fly's log and `jq` read); console.py writes
lines a person reads. Both scrub every string of URLs, `password=...` pairs and registered
secrets. Written without a logging library: an event is a name, a level and a dict of facts,
and importing structlog (and the asyncio it pulls in) cost a no-op deploy 26 ms of its start.
"""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from release_runner.core.events import Event, Level

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"]+")
_PASSWORD_KV = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)
_FLY_CONTEXT = {"app": "FLY_APP_NAME", "machine": "FLY_MACHINE_ID", "image": "FLY_IMAGE_REF"}

_secrets: set[str] = set()


def add_secret(value: str | None) -> None:
    """Register a literal that must never be printed (e.g. the password in the database URL)."""
    if value and len(value) >= 3:
        _secrets.add(value)


def redact(text: str) -> str:
    """Remove URLs, `password=...` pairs and registered secrets from a string."""
    # Every string of every event passes here: skip the regular expressions when they cannot match.
    if "://" in text:
        text = _URL.sub(lambda m: m.group(0).split("://", 1)[0] + "://[redacted]", text)
    if "=" in text:
        text = _PASSWORD_KV.sub(r"\1[redacted]", text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return text


def redact_value(value: Any) -> Any:
    """redact() through nested dicts and lists."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(item) for item in value]
    return value


def fly_context() -> dict[str, str]:
    """App, machine and image from Fly's environment, for log lines and history rows."""
    return {key: os.environ[var] for key, var in _FLY_CONTEXT.items() if os.environ.get(var)}


def new_run_id() -> str:
    return os.urandom(8).hex()  # not uuid: importing it costs a no-op deploy 1.5 ms


class Writer:
    """Writes whole lines to a stream. If the stream goes away (`migrate | head`), later lines
    go to stderr instead: the run goes on, and its summary still reaches somebody."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lost = False

    def line(self, text: str) -> None:
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            if self.stream is sys.stderr:
                return
            self.lost = True
            self.stream = sys.stderr
            self.line(text)

    def __call__(self, event: Event, level: Level, facts: dict[str, Any]) -> None:
        """Render one event (a listener, see events.py)."""
        raise NotImplementedError


class JsonLines(Writer):
    """One JSON object per event: timestamp (RFC 3339, UTC), level, event, run_id, the Fly
    context, then the event's facts."""

    def __init__(self, stream: TextIO, run_id: str) -> None:
        super().__init__(stream)
        self.context = {"run_id": run_id, **fly_context()}

    def __call__(self, event: Event, level: Level, facts: dict[str, Any]) -> None:
        record = {
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "level": str(level),
            "event": str(event),
            **self.context,
            **{key: redact_value(value) for key, value in facts.items()},
        }
        self.line(json.dumps(record, default=str, ensure_ascii=False))


def early_summary(command: str | None, status: str, code: int, message: str) -> JsonLines:
    """The `release.finished` line of a run that never started (a usage error, a signal during
    start-up), for log searches; returns the writer, which knows whether stdout was lost."""
    from release_runner.core.events import Progress

    writer = JsonLines(sys.stdout, new_run_id())
    writer(Event.RELEASE_FINISHED, Level.ERROR, Progress().summary(command, status, code, error=message))
    return writer


def renderer(log_format: str, stream: TextIO, run_id: str, no_color: bool = False) -> Writer:
    """The renderer for `--log-format`: `auto` is the console on a terminal, JSON lines elsewhere."""
    if log_format == "console" or (log_format == "auto" and stream.isatty()):
        from release_runner.cli.console import Console, colour_wanted

        return Console(stream, colour_wanted(stream, no_color))
    return JsonLines(stream, run_id)
