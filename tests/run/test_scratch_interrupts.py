"""Nothing of a throwaway cluster outlives the command, whenever the signal comes: SIGINT or
SIGTERM at random moments while `check` creates, starts and uses its local PostgreSQL. The
command runs with a TMPDIR of its own, so what is found there is this run's, whatever else
runs on the machine."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CLI, ROOT, cli_env, needs_server_binaries, write

TRIALS = 6


def _servers_under(directory: Path) -> list[int]:
    """PIDs of processes whose command line names `directory` (a postmaster's -D or -k)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(directory) in command:
                found.append(int(entry.name))
    return found


def _interrupted_check(args: list[str], signum: int, when: Callable[[Path], bool], where: str) -> None:
    """Run `check ARGS` with a TMPDIR of its own, send `signum` once `when(TMPDIR)` holds, and
    assert that the summary says so and that nothing of the cluster is left."""
    private = Path(tempfile.mkdtemp(prefix="rr-scratch-test-"))
    private.chmod(0o755)  # the cluster's own directory inside it belongs to the postgres user
    try:
        process = subprocess.Popen(
            [*CLI, "check", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(TMPDIR=str(private)),
            cwd=ROOT,
        )
        deadline = time.monotonic() + 30
        while not when(private) and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
        last = json.loads(stdout.strip().splitlines()[-1])
        assert last["event"] == "release.finished", where
        if process.returncode != 0:  # 0: the check was done before the signal landed
            assert (process.returncode, last["status"]) == (128 + signum, "interrupted"), where + stderr
        assert list(private.iterdir()) == [], (
            where + stdout[-1500:] + stderr[-1500:] + str(list(private.glob("*/*")))
        )
        assert _servers_under(private) == [], where
    finally:
        for pid in _servers_under(private):
            os.kill(pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", str(private)], check=False)


@needs_server_binaries
def test_signal_at_any_moment_of_the_local_cluster_leaves_nothing() -> None:
    """Random moments from start-up through initdb, pg_ctl start and the replay."""
    seed = int(os.environ.get("RELEASE_RUNNER_FAULT_SEED", time.time_ns() % 1_000_000))
    chosen = random.Random(seed)
    for trial in range(TRIALS):
        signum = chosen.choice([signal.SIGINT, signal.SIGTERM])
        delay = chosen.uniform(0.05, 2.0)
        started = time.monotonic()
        where = f"seed {seed}, trial {trial}: {signal.Signals(signum).name} after {delay:.2f} s"
        # The fault is when the signal lands; the wait is not a synchronisation.
        end = started + delay

        def due(_: Path, end: float = end) -> bool:
            return time.monotonic() >= end

        _interrupted_check([], signum, due, where)


@needs_server_binaries
def test_signal_during_the_replay_stops_the_server(tmp_path: Path) -> None:
    """SIGTERM while the replay runs in the cluster: the server is stopped and its directory
    removed."""
    write(tmp_path, {"0001_slow.sql": "SELECT pg_sleep(30);\n"})

    def replaying(private: Path) -> bool:
        return any(private.glob("release-runner-pg-*/data/postmaster.pid")) and bool(_servers_under(private))

    _interrupted_check(["--migrations", str(tmp_path)], signal.SIGTERM, replaying, "during the replay")


pytestmark = pytest.mark.db
