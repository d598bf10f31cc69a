"""Options and environment into Settings: the database URL and where it came from (its
secrets registered for masking), URLs in libpq's form, and what no option may be alone (a
--stale-lock-after a live runner can reach)."""

from __future__ import annotations

import os
from typing import Any

import click

from release_runner.core.redact import add_url_secrets
from release_runner.core.settings import LONGEST_BACKOFF, Settings, libpq_url, stale_lock_floor

URL_FALLBACKS = ("DIRECT_DATABASE_URL", "DATABASE_URL")


def settings_of(ctx: click.Context, options: dict[str, Any]) -> Settings:
    """Options -> Settings (every option a command passes here is a Settings field; a name that
    is not raises). The URL's source is kept, its value registered as a secret."""
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
    add_url_secrets(url)
    add_url_secrets(options.get("scratch_url"))
    add_url_secrets(options.get("data_url"))
    if options.get("data_url"):
        options["data_url"] = _libpq_url(options["data_url"])[0]
    dropped: list[str] = []
    schema = None
    if url:
        url, dropped, schema = _libpq_url(url)
    _refuse_reachable_staleness(options)
    compare_privileges = not options.pop("ignore_privileges", False)
    return Settings(
        database_url=url,
        database_url_source=source,
        database_url_dropped=tuple(dropped),
        compare_privileges=compare_privileges,
        prisma_schema=schema,
        **options,
    )


def _refuse_reachable_staleness(options: dict[str, Any]) -> None:
    """A --stale-lock-after a live runner can reach would have a second runner end a working
    one (during a retry's backoff, or while it probes a replica): refused, exit 2."""
    stale = options.get("stale_lock_after")
    floor = stale_lock_floor(options.get("data_timeout") or 0.0, options.get("data_url"))
    if stale is not None and stale < floor:
        raise click.UsageError(
            f"--stale-lock-after {stale:g}s is shorter than a live runner can sit idle holding the "
            f"lock (up to {LONGEST_BACKOFF:g}s between two attempts of a migration"
            + (", and one data probe on the --data-url replica" if options.get("data_url") else "")
            + f"); give {floor:g}s or more"
        )


def _libpq_url(url: str) -> tuple[str, list[str], str | None]:
    """libpq_url, its error a usage error that says how to write the URL."""
    try:
        return libpq_url(url)
    except ValueError as error:
        raise click.UsageError(
            f"the database URL cannot be read ({error}); check its brackets, and percent-encode "
            "special characters in the password (@ is %40, / is %2F)"
        ) from None
