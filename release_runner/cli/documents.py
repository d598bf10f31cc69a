"""The documents `status`, `history` and `plan` print on stdout for a person: a table of
migrations, the rows of the history, and what `migrate` would do. (`--format json` prints the
same facts as JSON.)"""

from __future__ import annotations

import json
from typing import Any

import click

from release_runner.cli.lines import on_object


def show_status(entries: list[dict[str, Any]], problems: list[str], output: str) -> None:
    """`status`'s document: JSON, or the table."""
    if output == "json":
        click.echo(json.dumps({"migrations": entries, "problems": problems}, indent=2))
    else:
        print_status(entries, problems)


def show_history(rows: list[dict[str, Any]], output: str) -> None:
    """`history`'s document: JSON, or the table."""
    if output == "json":
        click.echo(json.dumps({"history": rows}, indent=2))
    else:
        print_history(rows)


def print_status(entries: list[dict[str, Any]], problems: list[str]) -> None:
    """The table a person reads at 2 a.m.: anything not applied or pending in capitals."""
    width = max([len("VERSION")] + [len(e["version"]) for e in entries])
    click.echo(f"{'VERSION':<{width}}  {'STATE':<12}  {'MODE':<14}  {'APPLIED AT (UTC)':<19}  NAME")
    for entry in entries:
        state = entry["state"] if entry["state"] in ("applied", "pending") else entry["state"].upper()
        applied_at = (entry["applied_at"] or "")[:19]
        click.echo(
            f"{entry['version']:<{width}}  {state:<12}  {entry['transaction_mode'] or '':<14}  "
            f"{applied_at:<19}  {entry['name']}"
        )
    for problem in problems:
        click.echo(f"!! {problem}")


# plan's refusal: its findings are with the pending files (above on a terminal, below in a report)
PLAN_REFUSED = "migrate would refuse: the findings are listed with the pending migrations"


def print_plan(document: dict[str, Any]) -> None:
    """What `migrate` would do: each pending file, its statements (masked, shortened) with the
    table locks they take, each statement's findings under it (a finding of the whole file
    after them), then what waits and what refuses."""
    for item in document["pending"]:
        click.echo(
            f"{item['file']}: {item['transaction_mode']}, {item['statements']} statement(s), "
            f"lock_timeout {item['lock_timeout_ms']}ms"
        )
        findings = list(item["findings"])
        for step in item["steps"]:
            locks = f"  [locks {', '.join(step['locks'])}]" if step["locks"] else ""
            click.echo(f"  {step['line']}: {step['statement']}{locks}")
            at = (step["line"], step["column"])
            for finding in [f for f in findings if (f["line"], f["column"]) == at]:
                _print_finding(finding)
                findings.remove(finding)
        for finding in findings:
            _print_finding(finding)
    for item in document["deferred"]:
        click.echo(f"{item['file']}: deferred: {item['reason']}")
    for refusal in document["refusals"]:
        click.echo(f"!! {refusal}")
    click.echo(
        f"{document['total']} pending, {len(document['deferred'])} deferred, {document['errors']} error(s), "
        f"{document['warnings']} warning(s)"
    )


def _print_finding(finding: dict[str, Any]) -> None:
    click.echo(f"      {finding['severity']} {finding['rule']}{on_object(finding)}: {finding['message']}")
    click.echo(f"        {finding['fix']}")


def print_history(rows: list[dict[str, Any]]) -> None:
    """Who applied what, when, in which release, and how long it took."""
    header = ("VERSION", "STATUS", "MODE", "APPLIED AT (UTC)", "TOOK", "BY", "RELEASE", "NAME")
    table = [header] + [
        (
            row["version"],
            row["status"],
            row["transaction_mode"],
            (row["applied_at"] or "")[:19].replace("T", " "),
            "" if row["duration_ms"] is None else f"{row['duration_ms']} ms",
            row["applied_by"] or "",
            row["release"] or row["run_id"] or "",
            row["name"],
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        click.echo("  ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)).rstrip())
