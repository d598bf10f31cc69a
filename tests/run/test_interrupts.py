"""run/interrupts.py: signals as one interruption, deferred while a block runs."""

from __future__ import annotations

import os
import signal

import pytest

from release_runner.core.errors import Interrupted
from release_runner.run import interrupts


def test_a_signal_during_a_deferred_block_is_raised_after_it() -> None:
    """interrupts.deferred(): a SIGTERM that arrives inside the block lets the block finish
    (what it records and reports happens whole), then interrupts."""
    saved = {signum: signal.getsignal(signum) for signum in interrupts.SIGNALS}
    done: list[str] = []
    try:
        interrupts.install()
        with pytest.raises(Interrupted) as raised, interrupts.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("reported")
            done.append("marked")
        assert raised.value.signum == signal.SIGTERM
        assert done == ["reported", "marked"]
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
