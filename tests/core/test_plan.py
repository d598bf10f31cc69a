"""core/plan.py: files and history rows -> the state of each migration and what refuses."""

from __future__ import annotations

import re

import pytest

from release_runner.core.history import HistoryRow, Mode, Status
from release_runner.core.migrations import Migration
from release_runner.core.plan import State, make_plan
from tests.conftest import migration_value


def _row(version: str, checksum: str, status: Status = Status.APPLIED) -> HistoryRow:
    return HistoryRow(version, f"m{version}", checksum, Mode.TRANSACTION, status)


A, B, C = (
    migration_value("1", "SELECT 'a';"),
    migration_value("2", "SELECT 'b';"),
    migration_value("3", "SELECT 'c';"),
)


@pytest.mark.parametrize(
    ("files", "rows", "states"),
    [
        ([A, B], [], [State.PENDING, State.PENDING]),
        ([A, B], [_row("1", A.checksum)], [State.APPLIED, State.PENDING]),
        ([A, B], [_row("1", "edited")], [State.CHANGED, State.PENDING]),
        ([B], [_row("1", A.checksum), _row("2", B.checksum)], [State.APPLIED, State.MISSING]),
        (
            [A, B, C],
            [_row("1", A.checksum), _row("3", C.checksum)],
            [State.APPLIED, State.OUT_OF_ORDER, State.APPLIED],
        ),
        ([A], [_row("1", A.checksum, Status.STARTED)], [State.UNRESOLVED]),
        ([A], [_row("1", A.checksum, Status.FAILED)], [State.UNRESOLVED]),
    ],
)
def test_plan_states(files: list[Migration], rows: list[HistoryRow], states: list[State]) -> None:
    """Each combination of files and history rows gives the documented state."""
    plan = make_plan(files, rows)
    assert [entry.state for entry in plan.entries] == states
    refusing = {State.CHANGED, State.MISSING, State.OUT_OF_ORDER, State.UNRESOLVED}
    assert len(plan.problems) == sum(1 for state in states if state in refusing)
    assert plan.pending == [e.migration for e in plan.entries if e.state is State.PENDING]


def test_every_printed_repair_command_carries_its_reason() -> None:
    """The advice for an unresolved row can be pasted as it is: --reason included."""
    (problem,) = make_plan([A], [_row("1", A.checksum, Status.FAILED)]).problems
    for command in re.findall(r"`([^`]*repair[^`]*)`", problem):
        assert "--reason" in command, problem
