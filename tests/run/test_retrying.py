"""run/retrying.py: tenacity policies with a deadline, on a fake clock."""

from __future__ import annotations

import random

import pytest
import tenacity

from release_runner.run import retrying


@pytest.mark.parametrize("draw", [0.0, 0.5, 1.0])
def test_backoff_grows_is_capped_and_jittered(draw: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """Waits double from `initial`, never exceed `maximum`, and are at least half the base."""
    monkeypatch.setattr(random, "uniform", lambda low, high: low + draw * (high - low))
    wait = retrying.equal_jitter(0.25, 5.0)
    for attempt in range(1, 10):
        base = min(5.0, 0.25 * 2 ** (attempt - 1))
        state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
        state.attempt_number = attempt
        assert base / 2 <= wait(state) <= base


class _Clock:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _never_reported(_: tenacity.RetryCallState) -> None:
    pass


@pytest.mark.parametrize("reserve", [0.0, 1.5])
def test_retries_never_wait_past_the_deadline(reserve: float) -> None:
    """With a deadline, the waits add up to at most the time left, no attempt starts with less
    than `reserve` left, and the error of the last attempt is raised as it is."""
    clock = _Clock()
    attempts: list[float] = []

    def fail() -> None:
        attempts.append(clock.now)
        raise TimeoutError("still down")

    deadline = retrying.Deadline(9.0, reserve=reserve, clock=lambda: clock.now)
    policy = retrying.policy(
        lambda _: True,
        _never_reported,
        wait=retrying.equal_jitter(1.0, 4.0),
        deadline=deadline,
        sleep=clock.sleep,
    )
    with pytest.raises(TimeoutError, match="still down"):
        policy(fail)
    assert len(attempts) > 2
    assert sum(clock.sleeps) <= 9.0 - reserve + 1e-9
    assert max(attempts) <= 9.0 - reserve + 1e-9


def test_retries_stop_at_the_attempt_count_and_on_other_errors() -> None:
    """`attempts` bounds the runs; an error that is not retryable is raised at once; each retry
    is reported before its wait with the attempt number and the delay."""
    clock = _Clock()
    calls = []
    reported: list[tuple[int, float]] = []

    def fail() -> None:
        calls.append(1)
        raise TimeoutError

    def report(state: tenacity.RetryCallState) -> None:
        assert isinstance(retrying.failure(state), TimeoutError)
        reported.append((state.attempt_number, retrying.delay(state)))

    no_deadline = retrying.Deadline(None)
    policy = retrying.policy(
        lambda _: True,
        report,
        wait=retrying.equal_jitter(0.1, 1),
        deadline=no_deadline,
        attempts=3,
        sleep=clock.sleep,
    )
    with pytest.raises(TimeoutError):
        policy(fail)
    assert len(calls) == 3 and len(clock.sleeps) == 2
    assert [number for number, _ in reported] == [1, 2] and [d for _, d in reported] == clock.sleeps
    other = retrying.policy(
        lambda e: isinstance(e, TimeoutError),
        report,
        wait=retrying.equal_jitter(0.1, 1),
        deadline=no_deadline,
    )
    with pytest.raises(KeyError):
        other(lambda: {"a": 1}["x"])
