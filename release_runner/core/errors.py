"""One base error with a class-level exit code and summary status; a subclass per row of the
exit-code table in the README. Only the CLI catches them."""

from __future__ import annotations

from typing import Any


class ReleaseError(Exception):
    """Base of every error the runner reports to its user.

    `fields` are extra structured facts (file, line, sqlstate...) that go into the log event.
    `listed` are the problems behind it, each already reported by an event of its own, and
    `advice` what to do about them: the message is `message: listed. advice`, and the
    `headline` (`message (each listed above). advice`) is what a person reads under those events.
    """

    exit_code: int = 1
    status: str = "failed"

    def __init__(self, message: str, *, listed: str = "", advice: str = "", **fields: Any) -> None:
        full = message + (f": {listed}" if listed else "") + (f". {advice}" if advice else "")
        super().__init__(full)
        self.message = full
        self.headline = (
            f"{message} (each listed above)" + (f". {advice}" if advice else "") if listed else None
        )
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
    stopped_by: str | None = None
    """What ended the run when the database was reachable (`release.finished`'s `stopped_by`)."""


class TimeBudgetSpent(UnreachableError):
    """--time-budget was spent: no migration starts after it, a running one is cancelled."""

    stopped_by = "time-budget"


class LockBusy(UnreachableError):
    """Another runner held the runner lock for all of --lock-wait."""

    stopped_by = "lock-wait"


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
