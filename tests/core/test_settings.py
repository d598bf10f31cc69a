"""core/settings.py: database URLs made libpq-ready, and durations."""

from __future__ import annotations

import pytest

from release_runner.core.settings import libpq_url, parse_duration


@pytest.mark.parametrize(
    ("url", "kept", "dropped"),
    [
        ("postgresql://u:p@h/db", "postgresql://u:p@h/db", []),
        ("postgresql://u:p@h/db?sslmode=require", "postgresql://u:p@h/db?sslmode=require", []),
        (
            "postgresql://u:p@h/db?schema=app&connection_limit=1",
            "postgresql://u:p@h/db?options=-c%20search_path%3Dapp",
            ["schema", "connection_limit"],
        ),
        ("host=h dbname=db", "host=h dbname=db", []),
    ],
)
def test_prisma_url_parameters_are_made_libpq_ready(url: str, kept: str, dropped: list[str]) -> None:
    """Prisma's own parameters are dropped and named; schema= becomes search_path, and is
    returned as the schema the URL names."""
    assert libpq_url(url) == (kept, dropped, "app" if "schema=app" in url else None)


@pytest.mark.parametrize(
    ("text", "seconds"), [("500ms", 0.5), ("5s", 5.0), ("2m", 120.0), ("1h", 3600.0), ("3", 3.0)]
)
def test_durations(text: str, seconds: float) -> None:
    """Every documented duration form parses."""
    assert parse_duration(text) == seconds
