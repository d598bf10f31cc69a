"""core/errors.py and core/history.py: one error class per exit code; the history vocabulary."""

from __future__ import annotations

import signal

from release_runner.core import errors
from release_runner.core.history import HistoryRow, Mode, Status


def test_one_error_class_per_exit_code() -> None:
    """The exit-code table of the README, one class each, with the summary's status."""
    table = {
        errors.MigrationFailed: (1, "failed"),
        errors.UsageError: (2, "refused"),
        errors.DriftError: (3, "drift"),
        errors.UnreachableError: (4, "unreachable"),
        errors.RefusedError: (5, "refused"),
    }
    for cls, (code, status) in table.items():
        error = cls("message", file="f")
        assert (error.exit_code, error.status, error.message, error.fields) == (
            code,
            status,
            "message",
            {"file": "f"},
        )
    assert {cls.exit_code for cls in table} == {1, 2, 3, 4, 5}


def test_interruptions_exit_128_plus_the_signal() -> None:
    assert errors.Interrupted(signal.SIGINT).exit_code == 130
    assert errors.Interrupted(signal.SIGTERM).exit_code == 143


def test_history_rows_spell_what_the_table_stores() -> None:
    row = HistoryRow("0001", "a", "x", Mode.NO_TRANSACTION, Status.STARTED)
    assert not row.applied and str(row.status) == "started" and str(row.transaction_mode) == "no-transaction"
    assert HistoryRow("0001", "a", "x", Mode.TRANSACTION, Status.APPLIED).applied
