"""Fixtures: a real PostgreSQL (RELEASE_RUNNER_TEST_DSN, else a throwaway cluster started from
the server binaries on this machine, as an unprivileged user when run as root), a fresh
database per test, and a helper that runs the CLI as a user would and parses its JSON lines."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import psycopg
import pytest

from release_runner.core.migrations import Directives, Migration, SourceFormat
from release_runner.db import connection
from release_runner.db.history import HistoryStore
from release_runner.run.scratch import LocalCluster, find_bindir
from tests.proxy import Proxy

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
CLI = [sys.executable, "-m", "release_runner"]
PASSWORD = "Tr1cky-s3cret-" + secrets.token_hex(4)
ROLE = "runner"


_NO_BINARIES = pytest.mark.skipif(
    find_bindir() is None, reason="no PostgreSQL server binaries to start a local cluster with"
)
F = TypeVar("F", bound=Callable[..., Any])


def needs_server_binaries(test: F) -> F:
    """A test that starts a PostgreSQL of its own: `db`, and skipped without server binaries."""
    marked: F = pytest.mark.db(_NO_BINARIES(test))
    return marked


@dataclass
class Server:
    """How tests reach the server: `admin` is a trusted maintenance URL, `host`/`port` the TCP
    address where the runner logs in as ROLE with PASSWORD."""

    admin: str
    host: str
    port: int
    cluster: LocalCluster | None = None

    def url(self, dbname: str, port: int | None = None) -> str:
        return f"postgresql://{ROLE}:{quote(PASSWORD)}@{self.host}:{port or self.port}/{dbname}"


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    dsn = os.environ.get("RELEASE_RUNNER_TEST_DSN")
    if dsn:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
        found = Server(dsn, str(info.get("host", "127.0.0.1")), int(str(info.get("port", 5432))))
        cluster = None
    else:
        if find_bindir() is None:
            pytest.skip("no PostgreSQL: set RELEASE_RUNNER_TEST_DSN or install the server binaries")
        cluster = LocalCluster(tcp=True, host_auth="scram-sha-256")
        cluster.start()
        found = Server(cluster.url(), "127.0.0.1", cluster.port, cluster)
    with psycopg.connect(found.admin, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
        conn.execute(f"CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
    yield found
    if cluster is not None:
        cluster.stop("immediate")
        cluster.remove()


@pytest.fixture
def database(server: Server) -> Iterator[str]:
    """A fresh empty database; yields its name."""
    name = f"t_{secrets.token_hex(6)}"
    connection.create_database(server.admin, name)
    yield name
    connection.drop_database(server.admin, name)


@pytest.fixture
def proxy(server: Server) -> Iterator[Proxy]:
    """A TCP proxy in front of the server that can cut, refuse or swallow (tests/proxy.py)."""
    found = Proxy(server.port)
    yield found
    found.close()


@pytest.fixture
def url(server: Server, database: str) -> str:
    return server.url(database)


@pytest.fixture
def admin(server: Server, database: str) -> Iterator[psycopg.Connection[Any]]:
    """A trusted autocommit connection to the test's database, for asserting what is there."""
    with psycopg.connect(connection.with_dbname(server.admin, database), autocommit=True) as conn:
        yield conn


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every JSON line the run printed (stdout, or stderr for document commands)."""
        lines = [line for line in (self.stdout + "\n" + self.stderr).splitlines() if line.startswith("{")]
        return [json.loads(line) for line in lines if '"event"' in line]

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    @property
    def finished(self) -> dict[str, Any]:
        last = [line for line in self.stdout.splitlines() if line.strip()][-1]
        finished: dict[str, Any] = json.loads(last)
        assert finished["event"] == "release.finished", last
        return finished


def cli_env(url: str | None = None, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        # GITHUB_STEP_SUMMARY: a test asks for a step summary itself, never gets the runner's
        if not k.startswith("RELEASE_RUNNER_")
        and k not in ("DATABASE_URL", "DIRECT_DATABASE_URL", "GITHUB_STEP_SUMMARY")
    }
    if url:
        env["RELEASE_RUNNER_DATABASE_URL"] = url
    env.update(extra)
    return env


def start_cli(*args: str, url: str | None = None) -> subprocess.Popen[str]:
    """Start `python -m release_runner ARGS` in the background, for faults injected mid-run."""
    return subprocess.Popen(
        [*CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(url),
        cwd=ROOT,
    )


def run_cli(
    *args: str, url: str | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> Run:
    """Run `python -m release_runner ARGS` as a user would; stdout is a pipe, so JSON lines."""
    result = subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        env=env or cli_env(url),
        timeout=timeout,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    return Run(result.returncode, result.stdout, result.stderr)


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return directory


def history(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    if not HistoryStore("release_runner").exists(conn):
        return []
    return conn.execute(
        "SELECT version, status, transaction_mode FROM release_runner.history ORDER BY version"
    ).fetchall()


def table_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `db` every test that is not an in-process unit test: one that reaches a server
    (from the fixtures it uses, so no test can forget its mark), and every test of the
    end-to-end and packaging folders (they run the CLI, pip, pipx, mypy and ruff as processes).
    `pytest -m "not db"` then runs the unit tests alone, in seconds."""
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if "server" in getattr(item, "fixturenames", ()) or folder in ("e2e", "packaging"):
            item.add_marker(pytest.mark.db)


def migration_value(version: str, text: str = "SELECT 1;", when: int | None = None) -> Migration:
    """A native Migration value, for the pure tests, without a file."""
    return Migration(
        version,
        f"m{version}",
        Path(f"sql/{version}_m.sql"),
        text,
        hashlib.sha256(text.encode()).hexdigest(),
        Directives(),
        SourceFormat.NATIVE,
        when,
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll until the predicate holds (synchronisation on a state, never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def running(admin: psycopg.Connection[Any], text: str) -> bool:
    """A runner session is running a statement that contains `text`."""
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'release-runner'"
        " AND state = 'active' AND query LIKE %s",
        (f"%{text}%",),
    ).fetchone()
    return bool(row and row[0])


def waiting_on_lock(admin: psycopg.Connection[Any]) -> bool:
    """The runner's session is queued behind somebody else's lock."""
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'release-runner'"
        " AND wait_event_type = 'Lock'"
    ).fetchone()
    return bool(row and row[0])


def events_of(stdout: str) -> list[dict[str, Any]]:
    """The JSON events of a run's stdout."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
