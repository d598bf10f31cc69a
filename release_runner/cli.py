"""The command line: turns options and environment into Settings, configures logging once, calls
one core function per command, renders its result, and maps errors to exit codes. Every run
ends with one `release.finished` line."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click

from release_runner import __version__, log
from release_runner.errors import Interrupted, MigrationFailed, ReleaseError, UsageError
from release_runner.settings import Settings, libpq_url, parse_duration

URL_FALLBACKS = ("DIRECT_DATABASE_URL", "DATABASE_URL")


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


def _option(name: str, *dest: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """An option that also reads RELEASE_RUNNER_<NAME> and shows it in --help."""
    env = kwargs.pop("envvar", None) or "RELEASE_RUNNER_" + name.lstrip("-").replace("-", "_").upper()
    kwargs.setdefault("show_default", True)
    return click.option(name, *dest, envvar=env, show_envvar=True, **kwargs)


COMMON = [
    _option(
        "--migrations",
        "migrations_dir",
        type=click.Path(path_type=Path),
        default=Path("sql"),
        help="Migrations directory: native, drizzle-kit or Prisma (detected).",
    ),
    _option(
        "--snapshot",
        "snapshot_path",
        type=click.Path(path_type=Path),
        default=None,
        help="Expected-schema file [default: <migrations>/schema.snapshot.json].",
    ),
    _option(
        "--database-url",
        default=None,
        show_default=False,
        help="Target database; falls back to DIRECT_DATABASE_URL, then DATABASE_URL.",
    ),
    _option(
        "--connect-timeout",
        type=DURATION,
        default="60s",
        help="Overall budget for reaching the database, retries included.",
    ),
    _option(
        "--history-schema",
        default="release_runner",
        help="Schema of the history table; the runner lock key derives from it.",
    ),
    _option(
        "--drizzle-history",
        default="drizzle.__drizzle_migrations",
        help="drizzle-kit's history table to adopt (its migrations.schema/.table setting).",
    ),
    _option(
        "--log-format",
        type=click.Choice(["auto", "json", "console"]),
        default="auto",
        help="auto: JSON lines unless stdout is a terminal.",
    ),
]
APPLY = [
    _option(
        "--lock-timeout",
        type=DURATION,
        default="5s",
        help="PostgreSQL lock_timeout for each migration (a file may override it).",
    ),
    _option(
        "--statement-timeout",
        type=DURATION,
        default="0",
        help="PostgreSQL statement_timeout for each migration (0 = off).",
    ),
    _option(
        "--retries",
        type=click.IntRange(1, 100),
        default=3,
        help="Attempts per migration on lock timeouts, deadlocks and lost connections.",
    ),
    _option("--lock-wait", type=DURATION, default="120s", help="How long to wait for another runner's lock."),
    _option(
        "--time-budget",
        type=DURATION,
        default=None,
        help="Start no migration after this long; cancel one still running. Keep it under "
        "Fly's release_command_timeout.",
    ),
    _option("--strict-lint", is_flag=True, help="Preflight warnings refuse the run."),
]
VERIFY = [
    _option("--strict", is_flag=True, help="Objects only in the database fail verification."),
    _option("--require-snapshot", is_flag=True, help="A missing expected-schema file is an error."),
]
FORMAT = _option(
    "--format",
    "output",
    type=click.Choice(["table", "json"]),
    default="table",
    help="Output document on stdout; events go to stderr.",
)
SCRATCH = [
    _option(
        "--scratch-url",
        default=None,
        help="Server where a temporary database may be created and dropped [default: a "
        "throwaway local PostgreSQL].",
    ),
]


def _with(options: list[Callable[..., Any]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def _settings(ctx: click.Context, options: dict[str, Any]) -> Settings:
    """Options -> Settings; the URL's source is kept, its value registered as a secret."""
    url = options.pop("database_url", None)
    source = None
    if url:
        from_env = ctx.get_parameter_source("database_url") == click.core.ParameterSource.ENVIRONMENT
        source = "RELEASE_RUNNER_DATABASE_URL" if from_env else "--database-url"
    else:
        for name in URL_FALLBACKS:
            if os.environ.get(name):
                url, source = os.environ[name], name
                break
    _register_secrets(url)
    _register_secrets(options.get("scratch_url"))
    dropped: list[str] = []
    if url:
        url, dropped = libpq_url(url)
    fields = {key: value for key, value in options.items() if key in Settings.__dataclass_fields__}
    return Settings(
        database_url=url, database_url_source=source, database_url_dropped=tuple(dropped), **fields
    )


def _register_secrets(url: str | None) -> None:
    """Keep the password of a URL from ever being printed, in any form the URL comes in:
    `scheme://user:pass@host`, a mistyped `scheme//user:pass@host` that libpq would echo back
    in its error, or `password=...` key/value pairs."""
    if not url:
        return
    from urllib.parse import unquote

    for match in re.finditer(r"[^\s:/@]*:([^\s@/]+)@", url):
        log.add_secret(match.group(1))
        log.add_secret(unquote(match.group(1)))
    for match in re.finditer(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", url, re.IGNORECASE):
        log.add_secret(match.group(1).strip("'"))


def _interrupt(signum: int, _: FrameType | None) -> None:
    raise Interrupted(signum)


def _finish(
    command: str,
    settings: Settings,
    body: Callable[[Any, str], Any],
    document: bool = False,
) -> NoReturn:
    """Run one command under the common contract: events, summary line, exit code."""
    from release_runner.runner import Progress

    run_id = log.new_run_id()
    log.configure(settings.log_format, sys.stderr if document else sys.stdout, run_id)
    logger = log.get_logger()
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    progress = Progress()
    logger.info(
        "release.started",
        command=command,
        version=__version__,
        migrations=str(settings.migrations_dir),
        database_url_source=settings.database_url_source,
    )
    result: dict[str, Any] = {}
    try:
        result = body(progress, run_id) or {}
        status, code = "ok", 0
    except Interrupted as interrupted:
        status, code = "interrupted", interrupted.exit_code
        result["error"] = (
            f"interrupted by {signal.Signals(interrupted.signum).name}; nothing of ours is left "
            "running: a migration in progress was cancelled and rolled back (a no-transaction "
            "one is recorded failed, for `repair`), and the lock released"
        )
    except ReleaseError as error:
        code = error.exit_code
        status = error.status
        if isinstance(error, MigrationFailed):
            status = "partial" if progress.applied else "failed"
        result["error"] = error.message
        logger.error("release.error", error=error.message, **error.fields)
    except Exception as error:
        status, code = "failed", 1
        result["error"] = f"{type(error).__name__}: {error}"
        logger.exception("release.crashed", error=result["error"])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logger.info(
        "release.finished",
        command=command,
        status=status,
        exit_code=code,
        applied=len(progress.applied),
        pending=progress.pending,
        migration=progress.migration,
        duration_ms=round((time.monotonic() - progress.started) * 1000),
        **result,
    )
    sys.stdout.flush()
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="release-runner")
def cli() -> None:
    """Apply PostgreSQL migrations at deploy time; refuse to go green on a half-applied schema.

    Exit codes: 0 ok, 1 migration failed (partial), 2 usage/configuration, 3 schema drift,
    4 unreachable / lock not acquired / time budget spent, 5 refused before changing anything,
    130/143 interrupted by SIGINT/SIGTERM.
    """


@cli.command()
@_with(COMMON + APPLY + VERIFY)
@_option("--dry-run", is_flag=True, help="Show what would run (same as `plan`); write nothing.")
@_option(
    "--no-verify", "skip_verify", is_flag=True, help="Emergencies only: skip schema verification (logged)."
)
@click.pass_context
def migrate(ctx: click.Context, /, skip_verify: bool, **options: Any) -> None:
    """Preflight, connect, lock, validate history, apply pending migrations, verify the schema."""
    settings = replace(_settings(ctx, options), verify=not skip_verify)
    if settings.dry_run:
        _plan(settings, "migrate", "table")
    from release_runner import runner

    _finish("migrate", settings, lambda progress, run_id: runner.migrate(settings, progress, run_id))


@cli.command()
@_with(COMMON)
@FORMAT
@click.pass_context
def status(ctx: click.Context, /, output: str, **options: Any) -> None:
    """Read-only: applied, pending, changed, missing, unresolved per migration."""
    settings = _settings(ctx, options)
    from release_runner import runner

    def body(progress: Any, _: str) -> dict[str, Any]:
        current = runner.status(settings)
        entries = [entry.as_dict() for entry in current.entries]
        progress.pending = len(current.pending)
        if output == "json":
            click.echo(json.dumps({"migrations": entries, "problems": current.problems}, indent=2))
        else:
            _print_status(entries, current.problems)
        return {"problems": len(current.problems)}

    _finish("status", settings, body, document=True)


def _print_status(entries: list[dict[str, Any]], problems: list[str]) -> None:
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


def _plan(settings: Settings, command: str, output: str) -> NoReturn:
    from release_runner import runner

    def body(progress: Any, _: str) -> dict[str, Any]:
        report = runner.plan_report(settings)
        document = report.as_dict()
        progress.pending = document["total"]
        if output == "json":
            click.echo(json.dumps(document, indent=2))
        else:
            for item in document["pending"]:
                click.echo(
                    f"{item['file']}: {item['transaction_mode']}, {item['statements']} statement(s), "
                    f"lock_timeout {item['lock_timeout_ms']}ms"
                )
                for finding in item["findings"]:
                    click.echo(
                        f"  {finding['severity']}: {finding['file']}:{finding['line']}:"
                        f"{finding['column']} {finding['rule']}: {finding['message']}"
                    )
            for refusal in document["refusals"]:
                click.echo(f"!! {refusal}")
            click.echo(
                f"{document['total']} pending, {document['errors']} error(s), "
                f"{document['warnings']} warning(s)"
            )
        if document["refusals"] or document["errors"]:
            from release_runner.errors import RefusedError

            raise RefusedError("migrate would refuse: see the findings above")
        return {}

    _finish(command, settings, body, document=True)


@cli.command()
@_with(COMMON + APPLY)
@FORMAT
@click.pass_context
def plan(ctx: click.Context, /, output: str, **options: Any) -> None:
    """Read-only: what `migrate` would do now, with preflight findings. Writes nothing."""
    _plan(_settings(ctx, options), "plan", output)


@cli.command()
@_with(COMMON + VERIFY)
@click.pass_context
def verify(ctx: click.Context, /, **options: Any) -> None:
    """Read-only: compare the live schema with the expected schema; list every difference."""
    settings = _settings(ctx, options)
    from release_runner import runner

    _finish("verify", settings, lambda *_: runner.verify(settings) and None)


@cli.command()
@_with(COMMON + SCRATCH)
@click.pass_context
def snapshot(ctx: click.Context, /, **options: Any) -> None:
    """Replay every migration into a scratch database and write the expected-schema file."""
    settings = _settings(ctx, options)
    from release_runner import runner

    _finish("snapshot", settings, lambda *_: {"file": str(runner.snapshot(settings))})


@cli.command()
@_with(COMMON + SCRATCH + [APPLY[-1]])
@click.pass_context
def check(ctx: click.Context, /, **options: Any) -> None:
    """CI gate: read the directory, apply every migration to a scratch database from empty,
    and compare with the committed snapshot."""
    settings = _settings(ctx, options)
    from release_runner import runner

    _finish("check", settings, lambda *_: {"replayed": runner.check(settings)})


@cli.command()
@_with([*COMMON, APPLY[3]])
@_option("--applied", "applied_version", metavar="VERSION", help="Mark it applied (you finished it by hand).")
@_option(
    "--forget",
    "forget_version",
    metavar="VERSION",
    help="Delete its record (you undid it; migrate runs it again).",
)
@_option("--reason", required=True, help="Why; recorded in the log with who ran it.")
@click.pass_context
def repair(
    ctx: click.Context,
    /,
    applied_version: str | None,
    forget_version: str | None,
    reason: str,
    **options: Any,
) -> None:
    """Resolve a failed or unfinished no-transaction migration after a human fixed it."""
    if bool(applied_version) == bool(forget_version):
        raise click.UsageError("give exactly one of --applied VERSION or --forget VERSION")
    settings = _settings(ctx, options)
    from release_runner import runner

    version = applied_version or forget_version or ""
    action = "applied" if applied_version else "forget"
    _finish("repair", settings, lambda _, run_id: runner.repair(settings, version, action, reason, run_id))


@cli.command()
@_with([*COMMON, *SCRATCH, APPLY[3]])
@_option(
    "--version",
    "target_version",
    envvar="RELEASE_RUNNER_BASELINE_VERSION",
    metavar="VERSION",
    help="Newest migration the database already has [default: the newest file].",
)
@_option(
    "--force",
    envvar="RELEASE_RUNNER_BASELINE_FORCE",
    is_flag=True,
    help="Record even if the schema differs (loud, logged).",
)
@click.pass_context
def baseline(ctx: click.Context, /, target_version: str | None, force: bool, **options: Any) -> None:
    """Adopt a database built without history (drizzle-kit push, by hand): verify, then record."""
    settings = _settings(ctx, options)
    from release_runner import runner

    _finish(
        "baseline",
        settings,
        lambda _, run_id: {"recorded": runner.baseline(settings, target_version, force, run_id)},
    )


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as error:
        error.show()
        # Even a run that never started ends with its summary line, for log searches.
        log.configure("auto", sys.stdout, log.new_run_id())
        log.get_logger().info(
            "release.finished",
            status="refused",
            exit_code=UsageError.exit_code,
            applied=0,
            pending=0,
            error=error.format_message(),
        )
        sys.exit(UsageError.exit_code)
    except click.Abort:
        sys.exit(130)
