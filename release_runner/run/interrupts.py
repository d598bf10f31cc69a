"""Signals as interruptions. SIGINT, SIGTERM and SIGHUP raise Interrupted, once per run: what
follows (reading back what the migration in progress left, the summary) must not be cut short
by a second one. `install()` runs before anything else is imported, so that even a signal
during start-up ends with a summary line. `deferred()` holds a signal back while a block runs,
so that what the block records and reports happens whole."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from release_runner.core.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_deferring = 0
_pending: int | None = None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    global _pending
    if frame is not None and (
        frame.f_code.co_filename.startswith("<frozen importlib") or frame.f_code.co_name == "__del__"
    ):
        # A callback whose exceptions Python prints and drops ("Exception ignored in ..."):
        # raising here would lose the signal. Deliver it again in a moment instead.
        threading.Timer(0.01, os.kill, (os.getpid(), signum)).start()
        return
    ignore()
    if _deferring:
        _pending = signum
        return
    raise Interrupted(signum)


def install() -> None:
    for signum in SIGNALS:
        signal.signal(signum, _interrupt)


def ignore() -> None:
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


@contextmanager
def deferred() -> Iterator[None]:
    """A signal that arrives during the block is raised when the block is done. (A flag, not
    pthread_sigmask: the kernel may hand the signal to another thread, the watcher's.)"""
    global _deferring, _pending
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending is not None:
            signum, _pending = _pending, None
            raise Interrupted(signum)
