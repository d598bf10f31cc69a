"""Throwaway databases for `snapshot` and `check`: a temporary database on a server given by
`--scratch-url`, or a private PostgreSQL cluster started from the server binaries on this
machine (as root, run as an unprivileged user, since PostgreSQL refuses to run as root).
The test suite starts its cluster with the same class."""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from release_runner.core.errors import UsageError
from release_runner.db.connection import create_database, drop_database, with_dbname
from release_runner.run import interrupts

# Every command here runs as printed. release-runner is on no package index, so its `server`
# extra is installed from a checkout or a wheel of it; the example scratch URL is in key=value
# form, which the redaction of URLs in messages leaves readable.
INSTALL_ADVICE = (
    "install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql; macOS: brew "
    "install postgresql@16), or add PostgreSQL binaries in a wheel with pip install "
    "'./release-runner[server]' (the path of a checkout of release-runner), or pass "
    "--scratch-url 'host=HOST user=USER dbname=postgres' (a server where the runner may create "
    "and drop a temporary database)"
)


DEBIAN_BINDIRS = Path("/usr/lib/postgresql")


def find_bindir() -> Path | None:
    """Server binaries: `pg_config --bindir`, then PATH, then /usr/lib/postgresql/<newest>/bin,
    then the pgserver wheel of the `server` extra."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)

    def major(path: Path) -> float:
        try:
            return float(path.parent.name)
        except ValueError:
            return 0.0

    candidates.extend(sorted(DEBIAN_BINDIRS.glob("*/bin"), key=major, reverse=True))
    # The `server` extra (pip install './release-runner[server]' from a checkout) ships binaries.
    wheel = importlib.util.find_spec("pgserver")
    if wheel is not None and wheel.origin:
        candidates.append(Path(wheel.origin).parent / "pginstall" / "bin")
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalCluster:
    """A private PostgreSQL cluster in a temporary directory, stopped and deleted on exit.

    Settings favour speed over durability (fsync off) unless `durable` is set: nothing in it
    outlives the process."""

    def __init__(self, tcp: bool = False, durable: bool = False, host_auth: str = "trust") -> None:
        bindir = find_bindir()
        if bindir is None:
            raise UsageError(f"no PostgreSQL server binaries found; {INSTALL_ADVICE}")
        self.bindir = bindir
        self.tcp = tcp
        self.durable = durable
        self.host_auth = host_auth
        self.port = _free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="release-runner-pg-"))
        self.data = self.directory / "data"
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres" if _user_exists("postgres") else "nobody"
            entry = pwd.getpwnam(self._user)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            check=False,
            user=self._user,
            group=pwd.getpwnam(self._user).pw_gid if self._user else None,
            extra_groups=[] if self._user else None,
            cwd=self.directory,
            # Out of the terminal's process group: a Ctrl-C reaches the runner alone, which
            # stops the server itself, rather than killing initdb or pg_ctl halfway.
            start_new_session=True,
        )

    def tool(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one of the server's programs as the cluster's owner (the tests make a standby
        with pg_basebackup and promote it with pg_ctl)."""
        return self._run(str(self.bindir / name), *args)

    def start(self) -> None:
        result = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth-local=trust",
            f"--auth-host={self.host_auth}",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        if result.returncode != 0:
            self.remove()
            raise UsageError(f"initdb failed: {result.stderr.strip()[-500:]}; {INSTALL_ADVICE}")
        self.launch()

    def launch(self) -> None:
        """Start the server on the data directory as it is (a standby's, made by pg_basebackup,
        in the tests)."""
        options = [
            f"-p {self.port}",
            f"-k {self.directory}",
            f"-c listen_addresses={'127.0.0.1' if self.tcp else ''!r}",
            "-c max_connections=200",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        result = self._run(
            str(self.bindir / "pg_ctl"),
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.data),
            "-l",
            str(self.directory / "server.log"),
            "-o",
            " ".join(options),
        )
        if result.returncode != 0:
            log = (self.directory / "server.log").read_text(errors="replace")[-800:]
            self.remove()
            raise UsageError(f"could not start a local PostgreSQL: {log.strip()}")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "stop", "-w", "-m", mode, "-D", str(self.data))

    def restart(self) -> None:
        """Stop and start the server in place (the tests use it to inject a restart)."""
        self._run(
            str(self.bindir / "pg_ctl"),
            "restart",
            "-w",
            "-m",
            "fast",
            "-D",
            str(self.data),
            "-l",
            str(self.directory / "server.log"),
        )

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        """A trusted connection over the private Unix socket."""
        return f"host={self.directory} port={self.port} user=postgres dbname={dbname}"

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop("immediate")
        self.remove()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextmanager
def server(scratch_url: str | None) -> Iterator[str]:
    """The URL of a server's maintenance database: `scratch_url`, or a local cluster's."""
    if scratch_url:
        yield scratch_url
        return
    cluster: LocalCluster | None = None
    try:
        # A signal while the cluster is made and started takes effect once it is up, so that
        # the cleanup below finds all of it: cut short, initdb or pg_ctl would leave their
        # directory behind, and a postmaster that pg_ctl had already forked would outlive us.
        with interrupts.deferred():
            cluster = LocalCluster()
            cluster.start()
        yield cluster.url()
    finally:
        if cluster is not None:
            with interrupts.deferred():  # a signal now must not cut the cleanup short
                cluster.stop("immediate")
                cluster.remove()


@contextmanager
def database(server_url: str) -> Iterator[str]:
    """A new empty database on `server_url`, dropped afterwards whatever happens."""
    name = f"release_runner_scratch_{secrets.token_hex(6)}"
    try:
        with interrupts.deferred():  # created whole, and then always dropped
            create_database(server_url, name)
        yield with_dbname(server_url, name)
    finally:
        with interrupts.deferred():
            drop_database(server_url, name)
