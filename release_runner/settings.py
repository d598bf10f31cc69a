"""Every knob of a run, as one frozen value built by the CLI and read by the core."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """`500ms`, `5s`, `2m`, `1h` or bare seconds -> seconds. Raises ValueError otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use 500ms, 5s, 2m or bare seconds)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def pg_duration(seconds: float) -> str:
    """Seconds -> a value PostgreSQL accepts for lock_timeout/statement_timeout (0 = off)."""
    return f"{round(seconds * 1000)}ms"


@dataclass(frozen=True)
class Settings:
    """Options of one invocation; each field mirrors a CLI option and its environment variable."""

    migrations_dir: Path = Path("sql")
    """Migrations directory: native `sql/`, a drizzle-kit folder or a Prisma folder."""
    snapshot_path: Path | None = None
    """Expected-schema file; None means `<migrations_dir>/schema.snapshot.json`."""
    database_url: str | None = None
    """Target database. Never logged; only `database_url_source` is."""
    database_url_source: str | None = None
    """Where the URL came from (`--database-url`, `DATABASE_URL`...), for the log."""
    scratch_url: str | None = None
    """Server where snapshot/check may create and drop a temporary database."""
    connect_timeout: float = 60.0
    """Overall budget for reaching the database, retries included (seconds)."""
    lock_timeout: float = 5.0
    """PostgreSQL lock_timeout for each migration (seconds); a file may override it."""
    statement_timeout: float = 0.0
    """PostgreSQL statement_timeout for each migration (seconds, 0 = off)."""
    retries: int = 3
    """Attempts per migration on transient errors (lock timeout, deadlock, lost connection)."""
    lock_wait: float = 120.0
    """How long to wait for another runner's lock (seconds)."""
    time_budget: float | None = None
    """Wall-clock budget for the whole run (seconds); None = unlimited."""
    history_schema: str = "release_runner"
    """Schema that holds the history table; the runner lock key derives from it."""
    verify: bool = True
    """Verify the live schema after migrate (`--no-verify` turns it off, loudly)."""
    require_snapshot: bool = False
    """A missing expected-schema file is an error rather than a warning."""
    strict: bool = False
    """Objects only in the database fail verification instead of warning."""
    strict_lint: bool = False
    """Preflight warnings refuse the run instead of warning."""
    dry_run: bool = False
    """Report what migrate would do; write nothing."""
    application_name: str = "release-runner"
    """application_name of every connection, so other sessions can see who holds what."""

    @property
    def snapshot_file(self) -> Path:
        return self.snapshot_path or self.migrations_dir / "schema.snapshot.json"

    @property
    def history_table(self) -> str:
        return f"{self.history_schema}.history"
