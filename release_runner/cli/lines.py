"""The logger structlog wraps: whole lines to a stream. When the stream goes away (`migrate |
head`) later lines go to stderr, so the run goes on and its summary still reaches somebody.
Also how a duration reads in those lines."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TextIO


class LineWriter:
    """The logger structlog wraps: writes each rendered line whole and flushes it."""

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

    def msg(self, message: str) -> None:
        self.line(message)

    info = warning = error = msg


def seconds(milliseconds: float) -> str:
    """A duration as a person reads it: `850 ms`, `2.4 s`."""
    return f"{milliseconds:.0f} ms" if milliseconds < 1000 else f"{milliseconds / 1000:.1f} s"


def on_object(finding: Mapping[str, Any], quote: str = "") -> str:
    """` on <object>` for a finding that names what it is about (its `object`: a table, a
    column as `table.column`...), in `quote` (Markdown's backtick in a report); else nothing."""
    return f" on {quote}{finding['object']}{quote}" if finding.get("object") else ""


class Facts(dict[str, Any]):
    """An event's facts for a sentence template (`str.format_map`): a fact it lacks reads as `?`,
    and a text's newlines and tabs (libpq's, in a reason) become single spaces."""

    def __init__(self, facts: Mapping[str, Any]) -> None:
        super().__init__({k: " ".join(v.split()) if isinstance(v, str) else v for k, v in facts.items()})

    def __missing__(self, key: str) -> str:
        return "?"
