"""cli/closing.py: the closing sentence of every command and outcome says what happened and never
contradicts it (issue 22: a dry run "nothing to apply" with one pending, read-only commands
ending "nothing applied", exit 4 of --time-budget labelled "unreachable")."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from release_runner.cli.closing import READ_ONLY, sentence
from release_runner.core.errors import Interrupted
from release_runner.run.conclude import _interrupted
from release_runner.run.progress import Progress

COMMANDS = [
    "migrate",
    "status",
    "plan",
    "verify",
    "snapshot",
    "check",
    "baseline",
    "repair",
    "new",
    "ready",
    "history",
]
# status, exit code, facts a run of that outcome carries
OUTCOMES: dict[str, tuple[str, int, dict[str, Any]]] = {
    "ok": ("ok", 0, {}),
    "failed": ("failed", 1, {"error": "boom"}),
    "partial": ("partial", 1, {"error": "boom", "applied": 2, "pending": 1}),
    "drift": ("drift", 3, {"error": "schema verification failed: 1 difference(s): x"}),
    "refused": ("refused", 5, {"error": "preflight refused 1 problem(s)"}),
    "unreachable": ("unreachable", 4, {"error": "database unreachable within 2s"}),
    "time-budget": ("unreachable", 4, {"error": "time budget of 9s spent", "stopped_by": "time-budget"}),
    "lock-wait": ("unreachable", 4, {"error": "runner lock not acquired", "stopped_by": "lock-wait"}),
    "interrupted": ("interrupted", 130, {"error": "interrupted by SIGINT"}),
    "behind": ("behind", 6, {"error": "1 migration(s) of this image are not applied"}),
}


def _facts(command: str, outcome: str) -> dict[str, Any]:
    status, code, extra = OUTCOMES[outcome]
    return {
        "command": command,
        "status": status,
        "exit_code": code,
        "applied": 0,
        "pending": 0,
        "deferred": 0,
        "duration_ms": 1234,
        **extra,
    }


@pytest.mark.parametrize("outcome", list(OUTCOMES))
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_and_outcome(command: str, outcome: str) -> None:
    facts = _facts(command, outcome)
    text = sentence(facts, None, None, dry_run=False)
    lines = text.split("\n")
    if facts["exit_code"] == 0:
        assert len(lines) == 1
        assert lines[0] == (
            "nothing to apply (1.2 s)" if command == "migrate" else f"{command} done in 1.2 s"
        )
        return
    label = {"time-budget": "time budget spent", "lock-wait": "runner lock busy"}.get(
        outcome, facts["status"]
    )
    assert lines[0] == f"{label} (exit {facts['exit_code']}): {facts['error']}"
    if command == "migrate":
        applied = facts["applied"]
        assert lines[1] == (
            "applied 2 migrations before it stopped; 1 still pending" if applied else "nothing applied"
        )
    elif command in READ_ONLY:
        assert lines[1] == f"{command} changed nothing (1.2 s)"
    else:
        assert lines[1] == f"{command} stopped after 1.2 s"
    assert "unreachable" not in lines[0] or outcome == "unreachable"


def test_migrate_says_what_it_applied_deferred_verified_and_what_a_dry_run_would_do() -> None:
    ok = {**_facts("migrate", "ok"), "applied": 1, "deferred": 2}
    assert (
        sentence(ok, "schema verified", None, dry_run=False)
        == "applied 1 migration in 1.2 s; 2 deferred to the post-deploy phase; schema verified"
    )
    pending = {**_facts("migrate", "ok"), "pending": 1}
    assert (
        sentence(pending, None, None, dry_run=True)
        == "dry run: 1 migration would be applied, nothing was applied (1.2 s)"
    )
    assert sentence(_facts("migrate", "refused"), None, None, dry_run=True).endswith(
        "\ndry run: nothing was applied (1.2 s)"
    )
    refused = _facts("migrate", "refused")
    assert sentence(
        refused,
        None,
        "preflight refused 1 problem(s); nothing was applied (each listed above)",
        dry_run=False,
    ).startswith(
        "refused (exit 5): preflight refused 1 problem(s); nothing was applied (each listed above)\n"
    )


def test_an_interruption_names_the_lock_and_migrations_only_where_there_were_any() -> None:
    """An interrupted check (no lock, no target history) says neither; migrate says both."""
    check = Progress()
    assert (
        _interrupted(Interrupted(signal.SIGINT), check)
        == "interrupted by SIGINT: nothing of ours is left running"
    )
    migrate = Progress(locked=True, validated=True, applied=["0001"])
    assert _interrupted(Interrupted(signal.SIGTERM), migrate) == (
        "interrupted by SIGTERM: no migration was running; 1 applied by this run, all recorded; "
        "nothing of ours is left running and the runner lock is released"
    )
