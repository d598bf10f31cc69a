"""core/events.py: the event vocabulary is the README's."""

from __future__ import annotations

import re

from release_runner.core.events import Event
from tests.conftest import ROOT


def test_every_event_is_documented_and_every_documented_event_exists() -> None:
    """The README's event table and the Event enum name the same events."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Log events", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z_]+\.[a-z_]+)`", section))
    assert documented == {str(event) for event in Event}
