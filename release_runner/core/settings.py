"""Every knob of a run, as one frozen value built by the CLI and read by the core."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

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


# Query parameters that Prisma (and some hosting dashboards) put in DATABASE_URL but libpq
# rejects ("invalid URI query parameter"): dropped, so the app's own URL works as it is.
_NOT_LIBPQ = {
    "schema",
    "connection_limit",
    "pool_timeout",
    "pgbouncer",
    "sslaccept",
    "socket_timeout",
    "statement_cache_size",
    "sslidentity",
}


def libpq_url(url: str) -> tuple[str, list[str], str | None]:
    """A URL libpq accepts, the names of the parameters that were dropped for it, and the schema
    a Prisma URL names (`?schema=app`), if any. That `schema=X` becomes `options=-c
    search_path=X`, so unqualified names land where Prisma would put them."""
    if "://" not in url or "?" not in url:
        return url, [], None
    parts = urlsplit(url)
    kept, dropped = [], []
    search_path = None
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _NOT_LIBPQ:
            dropped.append(key)
            if key == "schema" and value:
                search_path = value
        else:
            kept.append((key, value))
    if search_path:
        options = f"-c search_path={search_path}"
        existing = [i for i, (key, _) in enumerate(kept) if key == "options"]
        if existing:
            key, value = kept[existing[0]]
            kept[existing[0]] = (key, f"{value} {options}")
        else:
            kept.append(("options", options))
    if not dropped:
        return url, [], None
    return urlunsplit(parts._replace(query=urlencode(kept, safe="/:", quote_via=quote))), dropped, search_path


# The longest wait between two attempts of a migration (equal jitter up to this), and so the
# longest a live runner's session sits idle while it holds the runner lock; a replica's data
# probes hold it idle at most this long to connect, and one probe's --data-timeout at a time.
LONGEST_BACKOFF = 10.0


def stale_lock_floor(data_timeout: float, data_url: str | None) -> float:
    """The least --stale-lock-after that no live runner can reach: twice the longest backoff,
    and with --data-url, longer than one probe on the replica by a backoff."""
    return max(2 * LONGEST_BACKOFF, data_timeout + LONGEST_BACKOFF if data_url else 0.0)


FLY_CONTEXT = {"app": "FLY_APP_NAME", "machine": "FLY_MACHINE_ID", "image": "FLY_IMAGE_REF"}


def fly_context() -> dict[str, str]:
    """App, machine and image from Fly's environment, for log lines and history rows."""
    return {key: os.environ[var] for key, var in FLY_CONTEXT.items() if os.environ.get(var)}


# The runner's value classes skip the generated __eq__/__repr__ they do not use: each generated
# method is compiled at import, and together they were a tenth of a no-op deploy's start. (No
# repr here also means the URL can never be printed through one.)
@dataclass(frozen=True, eq=False, repr=False)
class Settings:
    """Options of one invocation; each field mirrors a CLI option and its environment variable."""

    migrations_dir: Path = Path("sql")
    """Migrations directory: native `sql/`, a drizzle-kit folder or a Prisma folder."""
    migrations_format: str = "auto"
    """`native`, `drizzle`, `prisma`, or `auto`: detected, refused when two formats match."""
    snapshot_path: Path | None = None
    """Expected-schema file; None means `<migrations_dir>/schema.snapshot.json`."""
    database_url: str | None = None
    """Target database. Never logged; only `database_url_source` is."""
    database_url_source: str | None = None
    """Where the URL came from (`--database-url`, `DATABASE_URL`...), for the log."""
    database_url_dropped: tuple[str, ...] = ()
    """Query parameters dropped from the URL because libpq rejects them (Prisma's `schema`...)."""
    prisma_schema: str | None = None
    """The schema a Prisma URL names (`?schema=app`): created if missing, as Prisma does, and
    the search_path of the scratch replay too, so that it puts objects where the target does."""
    schema_target: str | None = None
    """In a schema-per-tenant fleet, the tenant's schema this run works on: first on the
    search_path, and what verification compares with the snapshot's `public`."""
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
    stale_lock_after: float = 60.0
    """A lock holder that is a release-runner session idle this long is a runner that vanished
    (a live one is never idle for more than a retry's backoff, 10 s at most): taken over."""
    time_budget: float | None = None
    """Wall-clock budget for the whole run (seconds); None = unlimited."""
    dry_run: bool = False
    """`migrate --dry-run`: what would run, as `plan` shows it; nothing is written."""
    post_deploy: bool = False
    """The post-deploy phase: every Machine runs the new release, so post-deploy (contract)
    migrations are applied and the release-phase compatibility rules are off."""
    release_id: str | None = None
    """Which release this run belongs to (default FLY_IMAGE_REF): a migration deferred by one
    release is applied by the release phase of another."""
    history_schema: str = "release_runner"
    """Schema that holds the history table; the runner lock key derives from it."""
    drizzle_history: str = "drizzle.__drizzle_migrations"
    """Where `drizzle-kit migrate` kept its history (its `migrations.schema`/`.table` config)."""
    verify: bool = True
    """Verify the live schema after migrate (`--no-verify` turns it off, loudly)."""
    require_snapshot: bool = False
    """A missing expected-schema file is an error rather than a warning."""
    strict: bool = False
    """Objects only in the database fail verification instead of warning."""
    compare_privileges: bool = True
    """Compare owners and privileges (`--ignore-privileges` turns it off for teams whose roles
    differ between environments)."""
    strict_lint: bool = False
    """Preflight warnings refuse the run instead of warning."""
    data_preflight: str = "on"
    """`on`: probe the live rows for what pending statements would refuse, and refuse the run
    on a finding; `warn`: report only; `off`."""
    data_timeout: float = 5.0
    data_url: str | None = None
    """Where the data probes run instead of the target: a read replica of it (the findings are
    as fresh as its replay). Never logged."""
    """statement_timeout and lock_timeout of each data probe (seconds)."""
    log_sql_values: bool = False
    """Print literal values of statements, rows and other sessions' queries as they are (local
    debugging only: they may be passwords or tokens). Off: masked."""
    report: Path | None = None
    """`--report FILE`: where the Markdown report of the run goes (cli/report.py)."""
    log_format: str = "auto"
    no_color: bool = False
    """No colour on the terminal (as the NO_COLOR environment variable also says)."""
    """`json`, `console`, or `auto`: JSON lines unless the output is a terminal."""
    application_name: str = "release-runner"
    """application_name of every connection, so other sessions can see who holds what."""

    @property
    def snapshot_file(self) -> Path:
        return self.snapshot_path or self.migrations_dir / "schema.snapshot.json"
