"""The command line: turns options and environment into Settings (cli/inputs.py), renders
events (JSON lines or the console), calls one command function, and maps its outcome to an exit
code. Every run ends with one `release.finished` line, whatever ends it: success, an error, a
signal, a crash."""

from __future__ import annotations

import gc
import importlib
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from types import ModuleType
from typing import Any, NoReturn

import click

from release_runner import __version__
from release_runner.cli import documents, log, report
from release_runner.cli import fleet as fleet_cli
from release_runner.cli.inputs import settings_of
from release_runner.cli.lines import LineWriter
from release_runner.cli.options import (
    APPLY,
    COMMON,
    FLEET,
    FORMAT,
    IGNORE_PRIVILEGES,
    LOCK_WAIT,
    LOG_FORMAT,
    MIGRATIONS,
    MIGRATIONS_FORMAT,
    REPORT,
    SCRATCH_URL,
    STALE_LOCK_AFTER,
    STRICT_LINT,
    TARGETS,
    VERIFY,
    option,
    with_options,
)
from release_runner.core import errors, mask
from release_runner.core.events import Event, Level
from release_runner.core.settings import Settings
from release_runner.core.targets import FleetOptions
from release_runner.run import interrupts
from release_runner.run.conclude import conclude
from release_runner.run.log import emit
from release_runner.run.progress import Progress

READY_CONNECT_TIMEOUT = 5.0  # `ready`'s --connect-timeout unless given: a readiness probe answers soon
_DEPLOY_TIME = {"data_checks": "at deploy time"}  # what `check` says of the data checks it cannot run


def _commands() -> ModuleType:
    """The commands module, loaded once a command runs: it brings psycopg, whose import takes
    about 100 ms (python -X importtime), which `--help` and a usage error do not need to pay.
    The one import of another wing made inside a function, for that measured reason."""
    with interrupts.deferred():  # whole, as __main__ imports the CLI: a half-made package breaks what follows
        module = importlib.import_module("release_runner.commands")
    # What start-up loaded lives as long as the process: out of the cyclic collector's reach from
    # now on, and the collector back on (`__main__` turned it off for the imports).
    gc.freeze()
    gc.enable()
    return module


def _finish(
    command: str,
    settings: Settings,
    body: Callable[[str], Any],
    document: bool = False,
    progress: Progress | None = None,
) -> NoReturn:
    """Run one command under the common contract: events, summary line, exit code."""

    mask.show_values(settings.log_sql_values)
    run_id = log.new_run_id()
    progress = progress or Progress()
    stream = sys.stderr if document else sys.stdout
    targets = report.targets(command, settings.report)
    record = report.begin() if targets else None
    writer = log.configure(settings.log_format, stream, run_id, progress, settings.no_color, record)
    code = _run(command, settings, body, run_id, progress)
    if record is not None:
        report.write(record, targets)
    _exit(code, writer)


def _run(
    command: str, settings: Settings, body: Callable[[str], Any], run_id: str, progress: Progress
) -> int:
    """The command's events and its summary line; returns the exit code."""

    def started() -> Any:
        emit(
            Event.RELEASE_STARTED,
            command=command,
            version=__version__,
            migrations=str(settings.migrations_dir),
            database_url_source=settings.database_url_source,
            **({"dry_run": True} if settings.dry_run else {}),
        )
        return body(run_id)

    ending = conclude(started, progress)
    interrupts.ignore()  # the summary is written whatever arrives now
    emit(
        Event.RELEASE_FINISHED,
        Level.INFO if ending.code == 0 else Level.ERROR,
        **progress.summary(command, ending.status, ending.code, **ending.facts),
    )
    return ending.code


def _exit(code: int, writer: LineWriter | None = None) -> NoReturn:
    if writer is not None and writer.lost:
        # stdout is gone (`migrate | head`): keep Python from failing to flush it at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)


def _single(
    ctx: click.Context, options: dict[str, Any], command: str, output: str | None = None, **changes: Any
) -> Settings:
    """The command's Settings; given --targets or --targets-query, the command runs on the fleet
    instead, and this does not return."""
    fleet = fleet_cli.options_of(options)
    settings = replace(settings_of(ctx, options), **changes)
    if fleet is not None:
        _fleet(command, settings, fleet, output)
    return settings


def _fleet(command: str, settings: Settings, fleet: FleetOptions, output: str | None = None) -> NoReturn:
    """Run `command` on every target of a fleet; `status` and `plan` print the targets' table."""
    progress = Progress()
    show = fleet_cli.document(output) if command in ("status", "plan") else None

    def body(run_id: str) -> Any:
        return _commands().fleet(settings, run_id, command, fleet, progress, show)

    _finish(command, settings, body, document=show is not None, progress=progress)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="release-runner")
def cli() -> None:
    """Apply PostgreSQL migrations at deploy time; refuse to go green on a half-applied schema.

    Exit codes: 0 ok, 1 migration failed (partial), 2 usage/configuration, 3 schema drift,
    4 unreachable / lock not acquired / time budget spent, 5 refused before changing anything,
    129/130/143 interrupted by SIGHUP/SIGINT/SIGTERM.
    """


@cli.command(short_help="Apply pending migrations and verify the schema (the deploy).")
@with_options(COMMON + APPLY + VERIFY + FLEET + [REPORT])
@option("--dry-run", is_flag=True, help="Show what would run (same as `plan`); write nothing.")
@FORMAT
@option(
    "--no-verify", "skip_verify", is_flag=True, help="Emergencies only: skip schema verification (logged)."
)
@click.pass_context
def migrate(ctx: click.Context, /, dry_run: bool, output: str, skip_verify: bool, **options: Any) -> None:
    """Preflight, connect, lock, validate history, apply pending migrations, verify the schema."""
    checks = {"verify": not skip_verify, "dry_run": dry_run}
    settings = _single(ctx, options, "plan" if dry_run else "migrate", output if dry_run else None, **checks)
    if dry_run:
        _plan(settings, "migrate", output)

    _finish("migrate", settings, lambda run_id: _commands().migrate(settings, run_id))


@cli.command(short_help="Who applied what, when, in which release, how long.")
@with_options(COMMON)
@FORMAT
@click.pass_context
def history(ctx: click.Context, /, output: str, **options: Any) -> None:
    """Read-only: who applied what, when, in which release, and how long it took."""
    settings = settings_of(ctx, options)

    def body(_: str) -> dict[str, Any]:
        rows = [row.as_dict() for row in _commands().history(settings)]
        documents.show_history(rows, output)
        return {"rows": len(rows)}

    _finish("history", settings, body, document=True)


@cli.command(short_help="Each migration's state, and what would refuse (read-only).")
@with_options(COMMON + FLEET)
@FORMAT
@click.pass_context
def status(ctx: click.Context, /, output: str, **options: Any) -> None:
    """Read-only: applied, pending, changed, missing, unresolved per migration."""
    settings = _single(ctx, options, "status", output)

    def body(_: str) -> dict[str, Any]:
        current = _commands().status(settings)
        documents.show_status([entry.as_dict() for entry in current.entries], current.problems, output)
        if current.problems:
            # Printed above in full; the exit code says that `migrate` would refuse.
            raise errors.RefusedError(
                f"migrate would refuse: {len(current.problems)} problem(s), listed above",
                problems=len(current.problems),
            )
        counts = {"applied_total": current.applied, "pending": len(current.pending)}
        return {**counts, "deferred": len(current.deferred), "problems": 0}

    _finish("status", settings, body, document=True)


def _plan(settings: Settings, command: str, output: str) -> NoReturn:

    def body(_: str) -> dict[str, Any]:
        document = _commands().plan_report(settings).as_dict()
        report.attach(document)
        if output == "json":
            click.echo(json.dumps(document, indent=2))
        else:
            documents.print_plan(document)
        data_refuses = document["data"] and settings.data_preflight == "on"
        if document["refusals"] or document["errors"] or data_refuses:
            raise errors.RefusedError(documents.PLAN_REFUSED)
        return {"pending": document["total"], "deferred": len(document["deferred"])}

    _finish(command, settings, body, document=True)


@cli.command(short_help="What migrate would do now, with its findings (read-only).")
@with_options(COMMON + APPLY + FLEET + [REPORT])
@FORMAT
@click.pass_context
def plan(ctx: click.Context, /, output: str, **options: Any) -> None:
    """Read-only: what `migrate` would do now, with preflight findings. Writes nothing."""
    _plan(_single(ctx, options, "plan", output), "plan", output)


@cli.command(short_help="Compare the live schema with the snapshot (read-only).")
@with_options(COMMON + VERIFY + FLEET)
@click.pass_context
def verify(ctx: click.Context, /, **options: Any) -> None:
    """Read-only: compare the live schema with the expected schema; list every difference."""
    settings = _single(ctx, options, "verify")

    _finish("verify", settings, lambda _: _commands().verify(settings))


@cli.command(short_help="Readiness check: 0 ready, 6 behind, 5 not in sync.")
@with_options(COMMON + VERIFY)
@option(
    "--verify",
    "check_schema",
    envvar="RELEASE_RUNNER_READY_VERIFY",
    is_flag=True,
    help="Also compare the live schema with the snapshot.",
)
@click.pass_context
def ready(ctx: click.Context, /, check_schema: bool, **options: Any) -> None:
    """Read-only readiness check: exit 0 when every migration of this image is applied; 6
    behind, 5 not in sync, 3 drift (--verify), 4 unreachable. One connection, no lock."""
    settings = settings_of(ctx, options)
    if ctx.get_parameter_source("connect_timeout") is click.core.ParameterSource.DEFAULT:
        settings = replace(settings, connect_timeout=READY_CONNECT_TIMEOUT)  # a probe must answer soon
    _finish("ready", settings, lambda _: _commands().ready(settings, check_schema))


@cli.command(short_help="Write the expected-schema file from a scratch replay.")
@with_options([*COMMON, SCRATCH_URL])
@click.pass_context
def snapshot(ctx: click.Context, /, **options: Any) -> None:
    """Replay every migration into a scratch database and write the expected-schema file."""
    settings = settings_of(ctx, options)

    _finish("snapshot", settings, lambda _: {"file": str(_commands().snapshot(settings))})


@cli.command(short_help="CI gate: replay every migration, compare with the snapshot.")
@with_options([*COMMON, SCRATCH_URL, STRICT_LINT, REPORT])
@click.pass_context
def check(ctx: click.Context, /, **options: Any) -> None:
    """CI gate: read the directory, apply every migration to a scratch database from empty,
    and compare with the committed snapshot."""
    settings = settings_of(ctx, options)

    # The scratch database holds no production rows: say where the data checks happen instead.
    _finish("check", settings, lambda _: {"replayed": _commands().check(settings), **_DEPLOY_TIME})


@cli.command(short_help="Resolve a failed or edited migration's record by hand.")
@with_options([*COMMON, LOCK_WAIT, STALE_LOCK_AFTER, IGNORE_PRIVILEGES, TARGETS])
@option("--applied", "applied_version", metavar="VERSION", help="Mark it applied (you finished it by hand).")
@option(
    "--forget",
    "forget_version",
    metavar="VERSION",
    help="Delete its record (you undid it; migrate runs it again).",
)
@option(
    "--accept-checksum",
    "accepted_version",
    metavar="VERSION",
    help="Record the edited text of an applied file (after checking the schema against the snapshot).",
)
@option("--reason", required=True, help="Why; recorded in the log with who ran it.")
@click.pass_context
def repair(
    ctx: click.Context,
    /,
    applied_version: str | None,
    forget_version: str | None,
    accepted_version: str | None,
    reason: str,
    **options: Any,
) -> None:
    """Resolve a record after a human fixed what it is about: a failed or unfinished
    no-transaction migration, or an applied file edited on purpose."""
    fleet_cli.refuse_targets("repair", options)
    chosen = {"applied": applied_version, "forget": forget_version, "accept-checksum": accepted_version}
    given = {action: version for action, version in chosen.items() if version}
    if len(given) != 1:
        raise click.UsageError("give exactly one of --applied, --forget or --accept-checksum VERSION")
    settings = settings_of(ctx, options)

    ((action, version),) = given.items()
    _finish("repair", settings, lambda run_id: _commands().repair(settings, version, action, reason, run_id))


@cli.command(short_help="Adopt a database built without history: verify, record.")
@with_options([*COMMON, SCRATCH_URL, LOCK_WAIT, STALE_LOCK_AFTER, IGNORE_PRIVILEGES, TARGETS])
@option(
    "--version",
    "target_version",
    envvar="RELEASE_RUNNER_BASELINE_VERSION",
    metavar="VERSION",
    help="Newest migration the database already has [default: the newest file].",
)
@option(
    "--force",
    envvar="RELEASE_RUNNER_BASELINE_FORCE",
    is_flag=True,
    help="Record even if the schema differs (loud, logged).",
)
@click.pass_context
def baseline(ctx: click.Context, /, target_version: str | None, force: bool, **options: Any) -> None:
    """Adopt a database built without history (drizzle-kit push, by hand): verify, then record."""
    fleet_cli.refuse_targets("baseline", options)
    settings = settings_of(ctx, options)

    _finish(
        "baseline",
        settings,
        lambda run_id: {"recorded": _commands().baseline(settings, target_version, force, run_id)},
    )


@cli.command(short_help="Create the next migration file in a native directory.")
@with_options([MIGRATIONS, MIGRATIONS_FORMAT, LOG_FORMAT])
@click.argument("name")
@click.pass_context
def new(ctx: click.Context, /, name: str, **options: Any) -> None:
    """Create the next migration file in a native directory: NAME says what it does."""
    settings = settings_of(ctx, options)

    _finish("new", settings, lambda _: {"file": str(_commands().new(settings, name))})


@cli.command(name="help", short_help="Show one command's help, or the list of commands.")
@click.argument("command", required=False)
@click.pass_context
def help_(ctx: click.Context, /, command: str | None) -> None:
    """Show the help of COMMAND (or the list of commands): `release-runner help migrate`."""
    group = ctx.parent
    assert group is not None
    found = cli.get_command(group, command) if command else None
    if command and found is None:
        raise click.UsageError(f"no command {command!r}; `release-runner help` lists them")
    target = found or cli
    click.echo(target.get_help(click.Context(target, info_name=command or "release-runner", parent=group)))


def main() -> None:
    """Signals are ours from the first moment (`__main__.run` installs them before this module
    is even imported), so even one that arrives while the options are read ends with a summary
    line and not a traceback."""
    command = next((arg for arg in sys.argv[1:] if arg in cli.commands), None)
    try:
        interrupts.install()
        cli(standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.exceptions.NoArgsIsHelpError:
        click.echo(cli.get_help(click.Context(cli, info_name="release-runner")), err=True)
        _early_finish(command, "refused", errors.UsageError.exit_code, "no command given; see the list above")
    except click.ClickException as error:
        error.show()
        _early_finish(command, "refused", errors.UsageError.exit_code, error.format_message())
    except (click.Abort, errors.Interrupted) as interrupted:
        # click turns a KeyboardInterrupt (which Interrupted is) into Abort, keeping it as the cause.
        cause = interrupted if isinstance(interrupted, errors.Interrupted) else interrupted.__cause__
        number = cause.signum if isinstance(cause, errors.Interrupted) else int(signal.SIGINT)
        _early_finish(
            command,
            "interrupted",
            128 + number,
            f"interrupted by {signal.Signals(number).name} before it started",
        )


def _early_finish(command: str | None, status: str, code: int, message: str) -> NoReturn:
    """The summary line of a run that never started, for log searches."""
    interrupts.ignore()
    _exit(code, log.early_summary(command, status, code, message))
