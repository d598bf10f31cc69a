"""How a run ended, in the words its summary uses: the status, the exit code and the facts of
`release.finished` (for one database) or `target.finished` (for one target of a fleet), derived
from what the run raised and from its Progress. One place decides this for both, so a fleet's
targets are judged exactly as single runs are."""

from __future__ import annotations

import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from release_runner.core import errors
from release_runner.core.events import Event
from release_runner.run.log import emit
from release_runner.run.progress import Progress


@dataclass
class Ending:
    """What a run came to: `status` and `code` as `release.finished` says them, and facts the
    run returned or its error adds (`error`, a `pending` counted without the lock)."""

    status: str
    code: int
    facts: dict[str, Any] = field(default_factory=dict)


def conclude(body: Callable[[], dict[str, Any] | None], progress: Progress) -> Ending:
    """Run `body` and say how it ended; `release.error` or `release.crashed` reports a failure
    (a signal's outcome is in the summary alone)."""
    try:
        return Ending("ok", 0, body() or {})
    except errors.Interrupted as interrupted:
        return Ending("interrupted", interrupted.exit_code, {"error": _interrupted(interrupted, progress)})
    except errors.ReleaseError as error:
        status = error.status
        if isinstance(error, errors.MigrationFailed):
            status = "partial" if progress.applied else "failed"
        facts: dict[str, Any] = {"error": error.message, **error.summary}
        if isinstance(error, errors.UnreachableError) and error.stopped_by:
            facts["stopped_by"] = error.stopped_by
        if error.fields.get("pending") is not None:  # counted without the lock (exit 4)
            facts["pending"] = error.fields["pending"]
        headline = {"headline": error.headline} if error.headline else {}
        emit(Event.RELEASE_ERROR, error=error.message, **headline, **error.fields)
        return Ending(status, error.exit_code, facts)
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        emit(Event.RELEASE_CRASHED, error=message, where=_where(error))
        return Ending("failed", 1, {"error": message})


def _interrupted(interrupted: errors.Interrupted, progress: Progress) -> str:
    """What an interruption left: the migrations (where the run reached the target's history),
    nothing running, and the runner lock (where it was taken)."""
    parts = []
    if interrupted.outcome or progress.validated:
        running = (
            f"{progress.migration} had not started" if progress.migration else "no migration was running"
        )
        parts += [
            interrupted.outcome or running,
            f"{len(progress.applied)} applied by this run, all recorded",
        ]
    released = " and the runner lock is released" if progress.locked else ""
    parts.append(f"nothing of ours is left running{released}")
    return f"interrupted by {signal.Signals(interrupted.signum).name}: " + "; ".join(parts)


def _where(error: BaseException) -> str:
    """file:line of the innermost frame: enough to report a crash, without a traceback."""
    frames = traceback.extract_tb(error.__traceback__)
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
