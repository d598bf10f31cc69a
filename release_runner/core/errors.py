"""One base error with a class-level exit code and summary status; a subclass per row of the
exit-code table in the README. Only the CLI catches them."""

from __future__ import annotations

from typing import Any


class ReleaseError(Exception):
    """Base of every error the runner reports to its user.

    `fields` are extra structured facts (file, line, sqlstate...) that go into the log event.
    """

    exit_code: int = 1
    status: str = "failed"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields
        self.summary: dict[str, Any] = {}
        """Facts the summary line (`release.finished`) carries besides the error."""


class UsageError(ReleaseError):
    """Bad option, no database URL, unreadable or malformed migrations directory."""

    exit_code = 2
    status = "refused"


class MigrationFailed(ReleaseError):
    """A migration failed and was rolled back (or, without a transaction, recorded failed).
    `cause` is what failed and where, without the advice on what to do about the database."""

    exit_code = 1
    status = "failed"
    cause: str | None = None


class DriftError(ReleaseError):
    """The live schema differs from the expected one."""

    exit_code = 3
    status = "drift"


class UnreachableError(ReleaseError):
    """Database unreachable, runner lock not acquired, or time budget spent."""

    exit_code = 4
    status = "unreachable"


class RefusedError(ReleaseError):
    """History or preflight says the run must not start; nothing was changed."""

    exit_code = 5
    status = "refused"


class BehindError(ReleaseError):
    """`ready`: migrations of this image are not applied yet; a rollout should wait for them."""

    exit_code = 6
    status = "behind"


class FleetError(ReleaseError):
    """Not every target of a fleet ended ok: the exit code is the most serious of theirs, and
    the summary counts the targets by status and names those that did not end ok."""

    def __init__(self, message: str, exit_code: int, status: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.status = status
        self.summary = summary


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived. A KeyboardInterrupt so that psycopg cancels the running query."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        # What the migration in progress left behind, read back from the server; None when no
        # migration was running.
        self.outcome: str | None = None

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
