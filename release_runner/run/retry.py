"""Bounded retries with exponential backoff and jitter, shared by connecting and by running
migrations. A loop of its own rather than tenacity: the one rule that matters at deploy time is
that no wait is scheduled past the caller's deadline, and that is a line here."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def backoff(attempt: int, initial: float, maximum: float, draw: Callable[[], float] = random.random) -> float:
    """The wait after failed attempt number `attempt` (1-based): exponential from `initial`,
    capped at `maximum`, with equal jitter (between half and all of it) so that runners that
    failed together do not retry together."""
    base = min(maximum, initial * 2.0 ** (attempt - 1))
    return base / 2 + draw() * base / 2


def with_retries(
    action: Callable[[], T],
    retryable: Callable[[BaseException], bool],
    on_retry: Callable[[int, BaseException, float], None],
    *,
    initial: float,
    maximum: float,
    attempts: int | None = None,
    deadline: float | None = None,
    reserve: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run `action`; while it fails with a `retryable` error, wait and run it again, until
    `attempts` runs are made or the `deadline` (a `clock()` value) is reached: no attempt
    starts with less than `reserve` seconds left before it (the time an attempt needs), so
    the last one ends by the deadline. `on_retry(attempt, error, delay)` is called before
    each wait. The last error is re-raised as it is."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return action()
        except BaseException as error:
            if not retryable(error) or (attempts is not None and attempt >= attempts):
                raise
            delay = backoff(attempt, initial, maximum)
            if deadline is not None:
                left = deadline - clock() - reserve
                if left <= 0:
                    raise
                delay = min(delay, left)
            on_retry(attempt, error, delay)
            sleep(delay)
