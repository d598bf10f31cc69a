"""The command line of a fleet: `--targets FILE` or `--targets-query SQL` (with `--canary`,
`--parallel`, `--max-failures`, `--shard`) on `migrate`, `status`, `plan` and `verify`, and the
table of targets `status` and `plan` print."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from release_runner.core.targets import FleetOptions

if TYPE_CHECKING:  # run/fleet brings psycopg, which --help and usage errors do not load
    from release_runner.run.fleet import TargetEnding

_COLUMNS = ("target", "status", "applied", "pending", "deferred", "failed", "state")


def options_of(options: dict[str, Any]) -> FleetOptions | None:
    """The fleet's options, taken out of the command's (they are not Settings); None without
    --targets or --targets-query."""
    fleet = FleetOptions(
        options.pop("targets_file", None),
        options.pop("targets_query", None),
        options.pop("canary", 1),
        options.pop("parallel", 4),
        options.pop("max_failures", None),
        options.pop("shard", None),
    )
    if fleet.targets_file is not None and fleet.targets_query is not None:
        raise click.UsageError("give --targets or --targets-query, not both")
    if fleet.targets_file is None and fleet.targets_query is None:
        return None
    if options.get("data_url"):
        # One replica cannot hold every target's rows: each target's probes run on its own data.
        raise click.UsageError("--data-url names one database's replica; a fleet probes each target itself")
    return fleet


def refuse_targets(command: str, options: dict[str, Any]) -> None:
    """`baseline` and `repair` change one database's history by hand: never a fleet's."""
    if options.pop("targets_file", None) is not None:
        raise click.UsageError(
            f"{command} works on one database at a time; run it with --database-url for the target "
            "that needs it, not --targets"
        )


def document(output: str | None) -> Callable[[list[TargetEnding]], None] | None:
    """What `status` and `plan` print for a fleet: one row per target, or a JSON document."""
    if output is None:
        return None

    def show(endings: list[TargetEnding]) -> None:
        rows = [
            {"target": item.target.name, **{key: item.facts.get(key) for key in _COLUMNS[1:]}}
            for item in endings
        ]
        for row, item in zip(rows, endings, strict=True):
            row["status"] = str(item.ending.status)
            if item.ending.code != 0:
                row["error"] = item.facts.get("error")
        if output == "json":
            click.echo(json.dumps({"targets": rows}, indent=2))
            return
        table = [list(_COLUMNS)] + [
            ["" if row.get(c) is None else str(row[c]) for c in _COLUMNS] for row in rows
        ]
        widths = [max(len(line[i]) for line in table) for i in range(len(_COLUMNS))]
        for line in table:
            click.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
        for row in rows:
            if row.get("error"):
                click.echo(f"{row['target']}: {row['error']}")

    return show
