"""core/scaffold.py: the next native migration file's name and text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from release_runner.core.errors import UsageError
from release_runner.core.scaffold import next_file
from tests.conftest import write


def test_the_next_number_in_the_directory_width(tmp_path: Path) -> None:
    write(tmp_path, {"001_a.sql": "SELECT 1;", "002_b.sql": "SELECT 2;"})
    path, version, text = next_file(tmp_path, "Add users table!")
    assert (path.name, version) == ("003_add_users_table.sql", "003")
    assert text.startswith("-- Add users table!\n")


def test_a_timestamp_after_timestamps_and_0001_in_an_empty_directory(tmp_path: Path) -> None:
    write(tmp_path / "stamped", {"20240101000000_a.sql": "SELECT 1;"})
    now = datetime(2026, 12, 6, 1, 2, 3, tzinfo=UTC)
    assert next_file(tmp_path / "stamped", "b", now)[1] == "20261206010203"
    (tmp_path / "empty").mkdir()
    assert next_file(tmp_path / "empty", "first")[0].name == "0001_first.sql"


def test_names_without_letters_and_foreign_folders_are_refused(tmp_path: Path) -> None:
    (tmp_path / "native").mkdir()
    with pytest.raises(UsageError, match="no letters or digits"):
        next_file(tmp_path / "native", "!!!")
    write(tmp_path / "drizzle", {"meta/_journal.json": '{"entries": []}', "0000_a.sql": ""})
    with pytest.raises(UsageError, match="drizzle-kit generate"):
        next_file(tmp_path / "drizzle", "x")
