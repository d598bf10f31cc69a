"""structlog configuration: one JSON object per line off a TTY, console on one; every value
passes through redaction so that no password or URL reaches output."""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

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


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value(item) for item in value]
    return value


def _redact_event(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event_dict.items():
        event_dict[key] = _redact_value(value)
    return event_dict


def _leading_keys(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """timestamp, level, event and run_id first, so a line reads well in `fly logs`."""
    first = {
        key: event_dict.pop(key) for key in ("timestamp", "level", "event", "run_id") if key in event_dict
    }
    return {**first, **event_dict}


def fly_context() -> dict[str, str]:
    """App, machine and image from Fly's environment, for log lines and history rows."""
    return {key: os.environ[var] for key, var in _FLY_CONTEXT.items() if os.environ.get(var)}


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


def configure(log_format: str = "auto", stream: TextIO | None = None, run_id: str = "") -> None:
    """Configure structlog once per process. `stream` is stdout unless a command prints a
    document there, in which case events go to stderr."""
    stream = stream or sys.stdout
    if log_format == "auto":
        log_format = "console" if stream.isatty() else "json"
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    context = {"run_id": run_id, **fly_context()}

    def add_context(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Any:
        for key, value in context.items():
            event_dict.setdefault(key, value)
        return event_dict

    structlog.configure(
        processors=[
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.add_log_level,
            add_context,
            structlog.processors.format_exc_info,
            _redact_event,
            _leading_keys,
            renderer,
        ],
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )


def get_logger() -> Any:
    return structlog.get_logger()
