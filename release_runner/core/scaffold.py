"""Pure: the next native migration file `new` creates, `<version>_<name>.sql`: the next number
in the width the directory uses, or a UTC timestamp where its versions are timestamps.
drizzle-kit and Prisma folders have generators of their own, and are refused."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from release_runner.core import migrations
from release_runner.core.errors import UsageError
from release_runner.core.migrations import SourceFormat

_GENERATORS = {
    SourceFormat.DRIZZLE: "drizzle-kit generate",
    SourceFormat.PRISMA: "prisma migrate dev --create-only",
}


def next_file(directory: Path, name: str, now: datetime | None = None) -> tuple[Path, str, str]:
    """(path, version, text) of the next migration of a native `directory`, saying `name`."""
    foreign = [f for f in migrations.detect_formats(directory) if f is not SourceFormat.NATIVE]
    if foreign:
        raise UsageError(
            f"{directory} is a {foreign[0]} folder: create its migrations with `{_GENERATORS[foreign[0]]}`",
            file=str(directory),
        )
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug:
        raise UsageError(
            f"{name!r} has no letters or digits to name a file with; say what the migration does"
        )
    versions = [m.group(1) for p in directory.iterdir() if (m := migrations.NATIVE_NAME.match(p.name))]
    newest = max(versions, key=int, default=None)
    if newest is not None and len(newest) == 14:
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
        version = max(stamp, str(int(newest) + 1))
    else:
        width = max((len(v) for v in versions), default=4)
        version = str(int(newest or 0) + 1).zfill(width)
    text = (
        f"-- {name}\n-- Runs in one transaction with its history row. Header directives, if any, go\n"
        "-- here (see the README): -- release-runner: lock-timeout=10s\n\n"
    )
    return directory / f"{version}_{slug}.sql", version, text
