"""core/redact.py: no URL, password pair or registered secret survives."""

from __future__ import annotations

import pytest

from release_runner.core import redact


@pytest.mark.parametrize(
    ("text", "secret_free"),
    [
        ("could not connect to postgresql://u:hunter22@h/db", "could not connect to postgresql://[redacted]"),
        ("host=h password=hunter22 dbname=x", "host=h password=[redacted] dbname=x"),
        ("the tail hunter22 of a password", "the tail [redacted] of a password"),
    ],
)
def test_redaction(text: str, secret_free: str) -> None:
    """URLs, password= pairs and registered secrets never survive redact()."""
    redact.add_secret("hunter22")
    assert redact.redact(text) == secret_free
    assert redact.redact_value({"a": [text]}) == {"a": [secret_free]}
