"""Pure: a fleet's targets and what its summary says. A targets file has one target a line,
`NAME URL`, the URL literal or `$VAR` / `${VAR}` (read from the environment, so secrets stay in
the platform's secret store); blank lines and `#` comments are skipped. A `--targets-query` row
names a target and one of a full `url`, a `database` on the control server, or a `schema` in the
control database (schema-per-tenant). `--shard I/N` keeps the targets whose stable hash falls in
shard I of N. The fleet's exit code is the most serious of its targets'.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from release_runner.core.errors import UsageError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))$")
# The fleet's exit code is the most serious among its targets', in this order.
SERIOUSNESS = (130, 143, 129, 1, 3, 5, 4, 2)


class TargetKind(StrEnum):
    URL = "url"  # a database of its own, by URL
    DATABASE = "database"  # a database on the control server, same credentials
    SCHEMA = "schema"  # a schema in the control database (schema-per-tenant)


class TargetStatus(StrEnum):
    """How a target's run ended (its `release.finished` status), or that it never started."""

    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"
    DRIFT = "drift"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class FleetOptions:
    """Where a fleet's targets come from and how they run (see run/fleet.py)."""

    targets_file: Path | None = None
    targets_query: str | None = None
    canary: int = 1
    parallel: int = 4
    max_failures: int | None = None
    shard: str | None = None


@dataclass(frozen=True, repr=False)
class Target:
    """One target: its name (what every output says, never its URL) and where it is."""

    name: str
    kind: TargetKind
    where: str
    """The URL, the database name or the schema name, by `kind`."""


def read_targets_file(path: Path, environ: Mapping[str, str]) -> list[Target]:
    """The targets of a file, in order; a UsageError naming file:line for a malformed line, a
    duplicate name or an unset variable, before any target is touched."""
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise UsageError(f"{path}: cannot read the targets file ({error.strerror})", file=str(path)) from None
    targets: list[Target] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{path}:{number}"
        parts = text.split()
        if len(parts) != 2 or not _NAME.fullmatch(parts[0]):
            raise UsageError(
                f"{where}: expected `NAME URL` (a name of letters, digits, `_`, `.` or `-`, then the URL "
                "or $VARIABLE); fix the line",
                file=str(path),
                line=number,
            )
        targets.append(Target(parts[0], TargetKind.URL, _expand(parts[1], environ, where)))
    return unique(targets, str(path))


def _expand(value: str, environ: Mapping[str, str], where: str) -> str:
    match = _VARIABLE.fullmatch(value)
    if match is None:
        return value
    name = match.group(1) or match.group(2)
    if not environ.get(name):
        raise UsageError(f"{where}: ${name} is not set; set it (a secret of the app) or write the URL")
    return environ[name]


def from_rows(rows: list[dict[str, object]]) -> list[Target]:
    """The targets a `--targets-query` returned: a `name` column and one of `url`, `database`
    or `schema`."""
    targets = []
    for index, row in enumerate(rows, 1):
        name = row.get("name")
        given = [kind for kind in TargetKind if row.get(kind.value) not in (None, "")]
        if not isinstance(name, str) or not _NAME.fullmatch(name) or len(given) != 1:
            raise UsageError(
                f"--targets-query row {index}: expected a `name` (letters, digits, `_`, `.`, `-`) and "
                "exactly one of `url`, `database` or `schema`; fix the query"
            )
        targets.append(Target(name, given[0], str(row[given[0].value])))
    return unique(targets, "--targets-query")


def unique(targets: list[Target], source: str) -> list[Target]:
    seen: set[str] = set()
    for target in targets:
        if target.name in seen:
            raise UsageError(f"{source}: target {target.name!r} is named twice; give each target one name")
        seen.add(target.name)
    return targets


def parse_shard(text: str, environ: Mapping[str, str]) -> tuple[int, int]:
    """`I/N` (1-based), or `auto/N` with I from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's
    0-based index)."""
    match = re.fullmatch(r"(\d+|auto)/(\d+)", text.strip())
    if match is None or int(match.group(2)) < 1:
        raise UsageError(f"--shard {text!r}: expected I/N (1 <= I <= N) or auto/N")
    count = int(match.group(2))
    if match.group(1) == "auto":
        index = environ.get("JOB_COMPLETION_INDEX", "")
        if not index.isdigit():
            raise UsageError("--shard auto/N reads JOB_COMPLETION_INDEX, which is not set to a number")
        number = int(index) + 1
    else:
        number = int(match.group(1))
    if not 1 <= number <= count:
        raise UsageError(f"--shard {text!r}: shard {number} of {count} does not exist")
    return number, count


def in_shard(name: str, shard: tuple[int, int]) -> bool:
    """Whether the target belongs to shard I of N: a hash of its name, stable across machines,
    processes and Python versions (not `hash()`, which is salted per process)."""
    number, count = shard
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count == number - 1


def status_of(code: int) -> TargetStatus:
    """The status a target's exit code stands for (partial is told apart by its run)."""
    return {
        0: TargetStatus.OK,
        1: TargetStatus.FAILED,
        2: TargetStatus.REFUSED,
        3: TargetStatus.DRIFT,
        4: TargetStatus.UNREACHABLE,
        5: TargetStatus.REFUSED,
    }.get(code, TargetStatus.INTERRUPTED)


def fleet_exit_code(codes: list[int]) -> int:
    """0 when every target ended ok; otherwise the most serious code among them."""
    failing = [code for code in codes if code != 0]
    if not failing:
        return 0
    return min(failing, key=lambda code: SERIOUSNESS.index(code) if code in SERIOUSNESS else len(SERIOUSNESS))
