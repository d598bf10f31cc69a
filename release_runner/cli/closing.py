"""The closing sentence a person reads at the end of any command, derived from what the command
is and what happened (`release.finished`'s facts), never a sentence that contradicts them:

- `migrate` counts what it applied (`dry run` when `--dry-run` wrote nothing), what is still
  pending and deferred; a failure says how many were applied before it stopped.
- A read-only command (`status`, `plan`, `verify`, `check`, `ready`, `history`) never says
  "applied": on success `COMMAND done`, on failure that it changed nothing.
- Any other command that failed says it stopped, and after how long.
- A run ended by `--time-budget` or `--lock-wait` (exit 4 with the database reachable) is
  labelled by that, not "unreachable".
- Where the error's problems were printed above one by one, the error is its headline only.
"""

from __future__ import annotations

from typing import Any

from release_runner.cli.lines import seconds

READ_ONLY = {"status", "plan", "verify", "check", "ready", "history"}
# What verification checked: without a snapshot only what needs none was checked, which is not
# "verified".
VERIFIED = {True: "schema verified", False: "invalid indexes and constraints checked (no snapshot)"}
_STOPPED_BY = {"time-budget": "time budget spent", "lock-wait": "runner lock busy"}


def _migrations(count: int) -> str:
    return f"{count} migration" + ("" if count == 1 else "s")


def _what_migrate_did(facts: dict[str, Any], dry_run: bool, took: str) -> str:
    applied, pending = int(facts.get("applied") or 0), int(facts.get("pending") or 0)
    if dry_run:
        would = "" if facts.get("exit_code") else f"{_migrations(pending)} would be applied, "
        return f"dry run: {would}nothing was applied ({took})"
    if facts.get("exit_code"):
        done = f"applied {_migrations(applied)} before it stopped" if applied else "nothing applied"
        return done + (f"; {pending} still pending" if pending else "")
    return f"applied {_migrations(applied)} in {took}" if applied else f"nothing to apply ({took})"


def sentence(facts: dict[str, Any], verified: str | None, headline: str | None, dry_run: bool) -> str:
    """The closing sentence: one line on success, the outcome then what was done on failure.
    `verified` says what verification checked; `headline` is the error without the problems
    already printed."""
    command, code = facts.get("command"), facts.get("exit_code")
    took = seconds(float(facts.get("duration_ms") or 0))
    extra = f"; {facts['deferred']} deferred to the post-deploy phase" if facts.get("deferred") else ""
    if facts.get("data_checks"):
        extra += f"; data checks run {facts['data_checks']}, against the live rows"
    if command == "migrate":
        done = _what_migrate_did(facts, dry_run, took)
    elif code == 0 and "applied_total" in facts:  # status: what the history holds
        done = f"{command}: {facts['applied_total']} applied, {facts.get('pending', 0)} pending ({took})"
    elif code == 0:
        done = f"{command} done in {took}"
    elif command in READ_ONLY:
        done = f"{command} changed nothing ({took})"
    else:
        done = f"{command} stopped after {took}"
    if code == 0:
        return done + extra + (f"; {verified}" if verified else "")
    label = _STOPPED_BY.get(str(facts.get("stopped_by")), facts.get("status"))
    error = headline or facts.get("error")
    return f"{label} (exit {code}): {error}\n{done}{extra}"
