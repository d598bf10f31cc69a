"""Keeping secrets out of everything printed: URLs, `password=...` pairs, and the literals
registered as secrets (the password of the database URL, in every form it may come in). The
CLI's redaction processor passes every value of every event through here; error messages built
from server or driver text pass through it before they are raised."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"]+")
_PASSWORD_KV = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)

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


def add_url_secrets(url: str | None) -> None:
    """Keep the password of a URL from ever being printed, in any form the URL comes in:
    `scheme://user:pass@host`, a mistyped `scheme//user:pass@host` that libpq would echo back
    in its error, or `password=...` key/value pairs."""
    if not url:
        return
    # The userinfo runs to the last @ of the authority: a password may hold an unencoded @,
    # and libpq, which splits at the first, then echoes the rest as a host name.
    for match in re.finditer(r"://[^:/@]*:(.*)@", url):
        password = match.group(1)  # to the last @: it may hold spaces, @ and : unencoded
        for piece in {password, unquote(password), *password.split("@"), *password.split()}:
            add_secret(piece)
    # A key/value password runs to the next `key=` (an unquoted one with a space is two words
    # to libpq, and it echoes the second).
    for match in re.finditer(r"password\s*=\s*('(?:[^'\\]|\\.)*'|.*?)(?=\s+\w+\s*=|$)", url, re.IGNORECASE):
        password = match.group(1).strip("'")
        for piece in {password, *password.split()}:
            add_secret(piece)
