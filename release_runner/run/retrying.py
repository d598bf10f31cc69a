"""The retry policies of a run, built with tenacity: connecting, waiting for the runner lock, and
a migration's transient failures are each a `tenacity.Retrying`.

What tenacity does not ship is the one rule that matters at deploy time: no wait is scheduled
past the run's deadline, and no attempt starts with less time left than it needs. That rule is
a `Deadline`, which is both a tenacity stop and a wait that clips another wait; it reads a
clock it is given, so a test proves it on a fake clock with tenacity's own `sleep` hook.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tenacity
from tenacity import RetryCallState

from release_runner.run import interrupts

Clock = Callable[[], float]


@dataclass(frozen=True)
class Deadline:
    """A moment on `clock` by which the last attempt must end: it stops the retrying when less
    than `reserve` seconds (the time one attempt may take) are left, and shortens any wait to
    the time left. `at=None` is no deadline."""

    at: float | None
    reserve: float = 0.0
    clock: Clock = time.monotonic

    def left(self) -> float:
        """Seconds left for waiting and one more attempt (infinite without a deadline)."""
        return float("inf") if self.at is None else self.at - self.clock() - self.reserve

    def stop(self) -> tenacity.stop.stop_base:
        return _StopAtDeadline(self)

    def clip(self, wait: tenacity.wait.wait_base) -> tenacity.wait.wait_base:
        return _WaitWithin(self, wait)


class _StopAtDeadline(tenacity.stop.stop_base):
    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.deadline.left() <= 0


class _WaitWithin(tenacity.wait.wait_base):
    def __init__(self, deadline: Deadline, wait: tenacity.wait.wait_base) -> None:
        self.deadline = deadline
        self.wait = wait

    def __call__(self, retry_state: RetryCallState) -> float:
        return max(0.0, min(self.wait(retry_state), self.deadline.left()))


def equal_jitter(initial: float, maximum: float) -> tenacity.wait.wait_base:
    """Exponential waits from `initial`, capped at `maximum`, with equal jitter: half of each
    wait is fixed and half is random, so runners that failed together do not retry together,
    and none retries at once."""
    half = tenacity.wait_exponential(multiplier=initial / 2, max=maximum / 2)
    return half + tenacity.wait_random_exponential(multiplier=initial / 2, max=maximum / 2)


def policy(
    retryable: Callable[[BaseException], bool],
    before_sleep: Callable[[RetryCallState], None],
    *,
    wait: tenacity.wait.wait_base,
    deadline: Deadline,
    attempts: int | None = None,
    sleep: Callable[[float], None] = interrupts.sleep,
) -> tenacity.Retrying:
    """Retry errors that are `retryable` until `attempts` runs were made or the `deadline`
    stops it; `before_sleep` reports each retry (the event), and the last error is raised as
    it is."""
    stop: tenacity.stop.stop_base = deadline.stop()
    if attempts is not None:
        stop = tenacity.stop_after_attempt(attempts) | stop
    return tenacity.Retrying(
        stop=stop,
        wait=deadline.clip(wait),
        retry=tenacity.retry_if_exception(retryable),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )


def failure(retry_state: RetryCallState) -> BaseException:
    """The error of the attempt that just failed (for a `before_sleep` callback)."""
    assert retry_state.outcome is not None
    error = retry_state.outcome.exception()
    assert error is not None
    return error


def delay(retry_state: RetryCallState) -> float:
    """The wait before the next attempt (for a `before_sleep` callback)."""
    action: Any = retry_state.next_action
    return float(action.sleep) if action is not None else 0.0
