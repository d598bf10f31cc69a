"""structlog, configured once per run: the run's context bound in contextvars (run id, Fly
context), the level, the run's Progress, redaction of every value, a timestamp, and the final
renderer: JSON lines off a terminal (what Fly's log and `jq` read), the console view on one.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, MutableMapping
from typing import Any, TextIO

import structlog

from release_runner.cli.console import Console, colour_wanted
from release_runner.cli.lines import LineWriter
from release_runner.core.events import Event, Level
from release_runner.core.redact import redact_value
from release_runner.core.settings import FLY_CONTEXT, fly_context
from release_runner.run.log import emit
from release_runner.run.progress import Progress

# The fields every JSON line starts with, in this order; the event's own facts follow.
_LEADING = ("timestamp", "level", "event", "run_id", *FLY_CONTEXT)

EventDict = MutableMapping[str, Any]
Processor = Callable[[Any, str, EventDict], Any]


def new_run_id() -> str:
    return os.urandom(8).hex()  # not uuid: importing it costs a no-op deploy 1.5 ms


def redact_facts(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """A processor: no URL, password or registered secret survives in any value."""
    return {key: redact_value(value) for key, value in event_dict.items()}


def _json_line(event_dict: EventDict, **_: Any) -> str:
    """The serializer of structlog's JSONRenderer: the leading fields first, then the facts."""
    ordered = {key: event_dict[key] for key in _LEADING if key in event_dict}
    ordered.update(event_dict)
    return json.dumps(ordered, default=str, ensure_ascii=False)


def configure(
    log_format: str,
    stream: TextIO,
    run_id: str,
    progress: Progress,
    no_color: bool = False,
    record: Processor | None = None,
) -> LineWriter:
    """Configure structlog for this run and return the writer (which knows whether its stream
    was lost). `--log-format auto` is the console on a terminal, JSON lines elsewhere. `record`
    (the report's) sees every event after redaction, as the JSON lines hold it."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(run_id=run_id, **fly_context())
    writer: LineWriter
    renderer: Processor
    if log_format == "console" or (log_format == "auto" and stream.isatty()):
        writer = renderer = Console(stream, colour_wanted(stream, no_color))
    else:
        writer = LineWriter(stream)
        renderer = structlog.processors.JSONRenderer(serializer=_json_line)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            progress,
            redact_facts,
            *([record] if record is not None else []),
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            renderer,
        ],
        logger_factory=lambda *_: writer,
        cache_logger_on_first_use=False,
    )
    return writer


def early_summary(command: str | None, status: str, code: int, message: str) -> LineWriter:
    """The `release.finished` line of a run that never started (a usage error, a signal during
    start-up), for log searches; returns the writer, which knows whether stdout was lost."""

    writer = configure(_asked_format(), sys.stdout, new_run_id(), Progress())
    emit(Event.RELEASE_FINISHED, Level.ERROR, **Progress().summary(command, status, code, error=message))
    return writer


def _asked_format() -> str:
    """The --log-format the command line or environment asks for, read from the raw arguments
    (click could not parse them): a usage error on a terminal is told in words, not JSON."""
    arguments = sys.argv[1:]
    for index, argument in enumerate(arguments):
        if argument.startswith("--log-format="):
            return argument.partition("=")[2]
        if argument == "--log-format" and index + 1 < len(arguments):
            return arguments[index + 1]
    return os.environ.get("RELEASE_RUNNER_LOG_FORMAT", "auto")
