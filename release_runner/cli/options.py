"""The command-line options: each declared once, reading RELEASE_RUNNER_<NAME> from the
environment and showing it in --help, and grouped by the commands that take them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from release_runner.core.settings import parse_duration


class Duration(click.ParamType[float]):
    """`500ms`, `5s`, `2m` or bare seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


DURATION = Duration()
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def option(name: str, *dest: str, **kwargs: Any) -> Decorator:
    """An option that also reads RELEASE_RUNNER_<NAME> and shows it in --help."""
    env = kwargs.pop("envvar", None) or "RELEASE_RUNNER_" + name.lstrip("-").replace("-", "_").upper()
    kwargs.setdefault("show_default", True)
    return click.option(name, *dest, envvar=env, show_envvar=True, **kwargs)


MIGRATIONS = option(
    "--migrations",
    "migrations_dir",
    type=click.Path(path_type=Path),
    default=Path("sql"),
    help="Migrations directory: native, drizzle-kit or Prisma (detected).",
)
MIGRATIONS_FORMAT = option(
    "--migrations-format",
    type=click.Choice(["auto", "native", "drizzle", "prisma"]),
    default="auto",
    help="How to read the migrations directory; auto detects it, and refuses one that reads two ways.",
)
SNAPSHOT = option(
    "--snapshot",
    "snapshot_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Expected-schema file [default: <migrations>/schema.snapshot.json].",
)
DATABASE_URL = option(
    "--database-url",
    default=None,
    show_default=False,
    help="Target database; falls back to DIRECT_DATABASE_URL, then DATABASE_URL.",
)
CONNECT_TIMEOUT = option(
    "--connect-timeout",
    type=DURATION,
    default="60s",
    help="Overall budget for reaching the database, retries included.",
)
HISTORY_SCHEMA = option(
    "--history-schema",
    default="release_runner",
    help="Schema of the history table; the runner lock key derives from it.",
)
DRIZZLE_HISTORY = option(
    "--drizzle-history",
    default="drizzle.__drizzle_migrations",
    help="drizzle-kit's history table to adopt (its migrations.schema/.table setting).",
)
LOG_FORMAT = option(
    "--log-format",
    type=click.Choice(["auto", "json", "console"]),
    default="auto",
    help="auto: JSON lines unless stdout is a terminal.",
)
LOCK_TIMEOUT = option(
    "--lock-timeout",
    type=DURATION,
    default="5s",
    help="PostgreSQL lock_timeout for each migration (a file may override it).",
)
STATEMENT_TIMEOUT = option(
    "--statement-timeout",
    type=DURATION,
    default="0",
    help="PostgreSQL statement_timeout for each migration (0 = off).",
)
RETRIES = option(
    "--retries",
    type=click.IntRange(1, 100),
    default=3,
    help="Attempts per migration on lock timeouts, deadlocks and lost connections.",
)
LOCK_WAIT = option(
    "--lock-wait", type=DURATION, default="120s", help="How long to wait for another runner's lock."
)
STALE_LOCK_AFTER = option(
    "--stale-lock-after",
    type=DURATION,
    default="60s",
    help="Take the lock over from a release-runner session idle this long (a vanished runner).",
)
TIME_BUDGET = option(
    "--time-budget",
    type=DURATION,
    default=None,
    help="Start no migration after this long; cancel one still running. Keep it under "
    "Fly's release_command_timeout.",
)
POST_DEPLOY = option(
    "--post-deploy",
    is_flag=True,
    help="Post-deploy phase: apply deferred (post-deploy) migrations; run once every Machine "
    "runs the new release.",
)
RELEASE_ID = option(
    "--release-id",
    envvar=["RELEASE_RUNNER_RELEASE_ID", "FLY_IMAGE_REF"],
    default=None,
    help="This release's identity [default: FLY_IMAGE_REF]; the release phase of a later "
    "release applies what an earlier one deferred.",
)
STRICT_LINT = option("--strict-lint", is_flag=True, help="Preflight warnings refuse the run.")
STRICT = option("--strict", is_flag=True, help="Objects only in the database fail verification.")
IGNORE_PRIVILEGES = option(
    "--ignore-privileges",
    "ignore_privileges",
    is_flag=True,
    help="Leave owners and privileges out of verification (roles differ between environments).",
)
REQUIRE_SNAPSHOT = option(
    "--require-snapshot", is_flag=True, help="A missing expected-schema file is an error."
)
FORMAT = option(
    "--format",
    "output",
    type=click.Choice(["table", "json"]),
    default="table",
    help="Output document on stdout; events go to stderr.",
)
SCRATCH_URL = option(
    "--scratch-url",
    default=None,
    help="Server where a temporary database may be created and dropped [default: a "
    "throwaway local PostgreSQL].",
)

NO_COLOR = option("--no-color", is_flag=True, help="No colour on the terminal (NO_COLOR also works).")
LOG_SQL_VALUES = option(
    "--log-sql-values",
    is_flag=True,
    help="Unsafe for shared logs: print literal values from statements, rows and other "
    "sessions' queries instead of masking them.",
)
TARGETS = option(
    "--targets",
    "targets_file",
    type=click.Path(path_type=Path),
    default=None,
    help="A fleet: a file of `NAME URL` lines (URL may be $VAR); each target is a complete run.",
)
FLEET = [
    TARGETS,
    option(
        "--targets-query",
        default=None,
        help="A fleet from the control database (--database-url): rows of `name` and one of `url`, "
        "`database` or `schema`.",
    ),
    option(
        "--canary",
        type=click.IntRange(0),
        default=1,
        help="The first K targets run alone first; if one does not end ok, no other starts.",
    ),
    option("--parallel", type=click.IntRange(1), default=4, help="Targets run at a time after the canaries."),
    option(
        "--max-failures",
        type=click.IntRange(1),
        default=None,
        help="Start no more targets once this many did not end ok (the rest are skipped).",
    ),
    option(
        "--shard",
        default=None,
        help="I/N: only the targets whose stable hash falls in shard I of N; auto/N takes I from "
        "JOB_COMPLETION_INDEX.",
    ),
]
COMMON = [
    MIGRATIONS,
    MIGRATIONS_FORMAT,
    SNAPSHOT,
    DATABASE_URL,
    CONNECT_TIMEOUT,
    HISTORY_SCHEMA,
    DRIZZLE_HISTORY,
    LOG_FORMAT,
    NO_COLOR,
    LOG_SQL_VALUES,
]
DATA = [
    option(
        "--data-preflight",
        type=click.Choice(["on", "warn", "off"]),
        default="on",
        help="Probe the live rows for what pending statements would refuse (NOT NULL, unique, CHECK, "
        "foreign key, casts), read-only and time-boxed: on refuses, warn reports.",
    ),
    option("--data-timeout", type=DURATION, default="5s", help="statement_timeout of each data probe."),
    option(
        "--data-url",
        metavar="URL",
        help="Run the data probes on this database (a read replica of the target) instead.",
    ),
]
APPLY = [
    LOCK_TIMEOUT,
    STATEMENT_TIMEOUT,
    RETRIES,
    LOCK_WAIT,
    STALE_LOCK_AFTER,
    TIME_BUDGET,
    STRICT_LINT,
    POST_DEPLOY,
    RELEASE_ID,
    *DATA,
]
VERIFY = [STRICT, REQUIRE_SNAPSHOT, IGNORE_PRIVILEGES]
REPORT = option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write a Markdown report of the run to FILE (plan and check also append one to "
    "$GITHUB_STEP_SUMMARY when it is set).",
)


def with_options(options: list[Decorator]) -> Decorator:
    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate
