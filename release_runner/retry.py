"""Bounded retries with exponential backoff and jitter (tenacity), shared by connecting and by
running migrations. tenacity is imported only after a first failure: the common case, where
everything works at once, does not pay for loading it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def with_retries(
    action: Callable[[], T],
    retryable: Callable[[BaseException], bool],
    on_retry: Callable[[int, BaseException, float], None],
    *,
    initial: float,
    maximum: float,
    attempts: int | None = None,
    budget: float | None = None,
) -> T:
    """Run `action`; while it fails with a `retryable` error, wait (exponential, jittered, at
    most `maximum` seconds) and run it again, until `attempts` runs are made or `budget`
    seconds have passed. `on_retry(attempt, error, delay)` is called before each wait. The last
    error is re-raised as it is."""
    started = time.monotonic()
    try:
        return action()
    except BaseException as error:
        if not retryable(error):
            raise
        first_failure: list[BaseException] = [error]

    from tenacity import (
        RetryCallState,
        Retrying,
        retry_if_exception,
        stop_after_attempt,
        stop_after_delay,
        stop_any,
        stop_never,
        wait_exponential_jitter,
    )
    from tenacity.stop import stop_base

    def attempt() -> T:
        # tenacity's first attempt is the failure that already happened: report it, then wait.
        if first_failure:
            raise first_failure.pop()
        return action()

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        assert error is not None
        on_retry(state.attempt_number, error, state.upcoming_sleep)

    stops: list[stop_base] = []
    if attempts is not None:
        stops.append(stop_after_attempt(attempts))
    if budget is not None:
        stops.append(stop_after_delay(max(budget - (time.monotonic() - started), 0.0)))
    retrying = Retrying(
        stop=stop_any(*stops) if stops else stop_never,
        wait=wait_exponential_jitter(initial=initial, max=maximum, jitter=initial * 2),
        retry=retry_if_exception(retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(attempt)
