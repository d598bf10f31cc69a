"""Signals as interruptions. SIGINT, SIGTERM and SIGHUP raise Interrupted, once per run: what
follows (reading back what the migration in progress left, the summary) must not be cut short
by a second one. `install()` runs before anything else is imported, so that even a signal
during start-up ends with a summary line. `deferred()` holds a signal back while a block runs,
so that what the block records and reports happens whole.

A fleet runs its targets in threads, and Python delivers a signal to the main thread only: the
fleet turns it into a request (`request()`) that the targets' threads honour at their next
step (`check()`, `sleep()`), while the statements they run are cancelled on the server through
the connections they registered (`register()`)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Protocol

from release_runner.core.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Per thread: a signal handler runs in the main thread, and only its own deferral counts.
_local = threading.local()
_requested = threading.Event()
_request_signum = 0


class Cancellable(Protocol):
    """A connection whose running statement can be cancelled from another thread."""

    def cancel_safe(self, *, timeout: float = ...) -> None: ...


_cancellable: set[Cancellable] = set()
_cancellable_lock = threading.Lock()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    if frame is not None and (
        frame.f_code.co_filename.startswith("<frozen importlib") or frame.f_code.co_name == "__del__"
    ):
        # A callback whose exceptions Python prints and drops ("Exception ignored in ..."):
        # raising here would lose the signal. Deliver it again in a moment instead.
        threading.Timer(0.01, os.kill, (os.getpid(), signum)).start()
        return
    ignore()
    if getattr(_local, "deferring", 0):
        _local.pending = signum
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
    _local.deferring = getattr(_local, "deferring", 0) + 1
    try:
        yield
    finally:
        _local.deferring -= 1
        pending = getattr(_local, "pending", None)
        if not _local.deferring and pending is not None:
            _local.pending = None
            raise Interrupted(pending)


def request(signum: int) -> None:
    """Ask every thread to stop as a signal would stop a single run, and cancel the statements
    the registered connections are running (the threads see their statement cancelled, and
    stop)."""
    global _request_signum
    _request_signum = signum
    _requested.set()
    with _cancellable_lock:
        connections = list(_cancellable)
    for conn in connections:
        with suppress(Exception):  # a connection already gone has nothing to cancel
            conn.cancel_safe(timeout=5.0)


def requested() -> int | None:
    """The signal a fleet was interrupted by, if it was."""
    return _request_signum if _requested.is_set() else None


def check() -> None:
    """Raise Interrupted in this thread if the fleet was interrupted."""
    if _requested.is_set():
        raise Interrupted(_request_signum)


def sleep(seconds: float) -> None:
    """time.sleep that an interruption of the fleet ends at once (tenacity's sleep hook)."""
    if _requested.wait(seconds):
        raise Interrupted(_request_signum)


def register(conn: Cancellable) -> None:
    """An interruption of the fleet cancels what `conn` runs, until `unregister(conn)`."""
    with _cancellable_lock:
        _cancellable.add(conn)


def unregister(conn: Cancellable) -> None:
    with _cancellable_lock:
        _cancellable.discard(conn)
