"""What the running app sees during a release: a steady workload of the previous release's
queries (reads and writes on the tables the release touches, four connections) runs while a
release is applied, by release-runner and by plain `psql` (each file in one transaction, no
lock_timeout: what most tools do). Two scenarios: no other load, and a long transaction that
has read one of the tables and holds its lock for 20 s (a report, a stuck worker).

The release expands three tables in one file (so its locks queue behind each other), builds an
index concurrently, validates a constraint, and drops a column the previous release still reads
in a post-deploy file. Prints the app's p50, p99 and max latency and failed queries, during the
release against the same workload without one, and checks the claims: with release-runner, p99
and max stay within lock_timeout + 10 %, and no app query fails.

usage: python3 bench/traffic.py [HOLD_SECONDS]"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from common import ROOT, LocalCluster, fresh_database, table

HOLD = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
LOCK_TIMEOUT = 2.0
CLIENTS = 4
QUIET = 3.0  # seconds of workload before and after each release

SETUP = """\
CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL, legacy_flag boolean DEFAULT false);
CREATE TABLE orders (id bigint PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts, qty int NOT NULL);
CREATE TABLE items (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders, sku varchar(32));
INSERT INTO accounts SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 20000) g;
INSERT INTO orders SELECT g, 1 + g % 20000, 1 + g % 5 FROM generate_series(1, 50000) g;
INSERT INTO items SELECT g, 1 + g % 50000, 'sku-' || g FROM generate_series(1, 100000) g;
"""
RELEASE = {
    "0002_expand.sql": "ALTER TABLE accounts ADD COLUMN tier text;\n"
    "ALTER TABLE orders ADD COLUMN note text;\n"
    "ALTER TABLE items ALTER COLUMN sku TYPE varchar(64);\n"
    "ALTER TABLE orders ADD CONSTRAINT orders_qty_positive CHECK (qty > 0) NOT VALID;\n",
    "0003_index.sql": "CREATE INDEX CONCURRENTLY orders_account ON orders (account_id);\n",
    "0004_validate.sql": "ALTER TABLE orders VALIDATE CONSTRAINT orders_qty_positive;\n",
    "0005_drop_legacy.sql": "-- release-runner: post-deploy\nALTER TABLE accounts DROP COLUMN legacy_flag;\n",
}
# The previous release's queries: it still reads legacy_flag.
QUERIES = [
    "SELECT email, legacy_flag FROM accounts WHERE id = %s",
    "SELECT qty FROM orders WHERE id = %s",
    "UPDATE orders SET qty = qty + 1 WHERE id = %s",
    "SELECT sku FROM items WHERE id = %s",
    "SELECT count(*) FROM items WHERE order_id = %s",
]


@dataclass
class Sample:
    started: float
    seconds: float
    error: str | None


@dataclass
class Workload:
    url: str
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def client(self) -> None:
        rng = random.Random()
        # No server-side prepared statements, as node-postgres sends queries: with them (psycopg
        # after 5 runs, postgres.js, Prisma, pgx) the column type change below fails each cached
        # statement once with 0A000, whoever applies it (see the README).
        with psycopg.connect(self.url, autocommit=True, prepare_threshold=None) as conn:
            while not self.stop.is_set():
                query = rng.choice(QUERIES)
                started = time.perf_counter()
                error = None
                try:
                    conn.execute(query, (rng.randint(1, 20000),))
                except psycopg.Error as failure:
                    error = failure.sqlstate or type(failure).__name__
                self.samples.append(Sample(started, time.perf_counter() - started, error))
                time.sleep(0.005)

    def __enter__(self) -> Workload:
        self.threads = [threading.Thread(target=self.client) for _ in range(CLIENTS)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def between(self, start: float, end: float) -> list[Sample]:
        """Queries whose run overlapped [start, end]."""
        return [s for s in self.samples if s.started <= end and s.started + s.seconds >= start]


def hold_lock(url: str, seconds: float, ready: threading.Event) -> None:
    """The long transaction: it read `items`, so it holds ACCESS SHARE until it ends."""
    with psycopg.connect(url, application_name="report") as conn:
        conn.execute("SELECT count(*) FROM items")
        ready.set()
        time.sleep(seconds)
        conn.rollback()


def apply_with_psql(url: str, directory: Path) -> int:
    """The release's files, each in one transaction (-1) except a concurrent index, which
    cannot be in one; the post-deploy directive means nothing to psql."""
    for path in (directory / name for name in RELEASE):
        single = [] if "CONCURRENTLY" in path.read_text() else ["-1"]
        result = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *single, "-d", url, "-f", str(path)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            return result.returncode
    return 0


def apply_with_runner(url: str, directory: Path) -> int:
    env = {**os.environ, "RELEASE_RUNNER_DATABASE_URL": url, "FLY_IMAGE_REF": "bench:2"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "release_runner",
            "migrate",
            "--migrations",
            str(directory),
            "--lock-timeout",
            f"{LOCK_TIMEOUT:g}s",
            "--retries",
            "20",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    return result.returncode


def summary(samples: list[Sample], after: list[Sample]) -> tuple[str, str, str, str, str]:
    """Latency of the queries that overlapped the release; failures also among those after
    it (a column the previous release reads may be gone by then)."""
    times = sorted(s.seconds * 1000 for s in samples)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    errors = Counter(s.error for s in samples + after if s.error)
    failed = ", ".join(f"{count} ({code})" for code, count in sorted(errors.items())) or "0"
    return (
        f"{statistics.median(times):.1f}",
        f"{p99:.0f}",
        f"{times[-1]:.0f}",
        failed,
        str(len(samples)),
    )


def one_run(
    cluster: LocalCluster, tool: str, hold: float, directory: Path
) -> tuple[list[Sample], list[Sample], list[Sample], str]:
    url = fresh_database(cluster, "traffic")
    (directory / "0001_setup.sql").write_text(SETUP)
    runner_env = {**os.environ, "RELEASE_RUNNER_DATABASE_URL": url, "FLY_IMAGE_REF": "bench:1"}
    subprocess.run(
        [sys.executable, "-m", "release_runner", "migrate", "--migrations", str(directory), "--no-verify"],
        check=True,
        capture_output=True,
        env=runner_env,
        cwd=ROOT,
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    for name, text in RELEASE.items():
        (directory / name).write_text(text)
    if tool == "release-runner":
        subprocess.run(
            [
                sys.executable,
                "-m",
                "release_runner",
                "snapshot",
                "--migrations",
                str(directory),
                "--scratch-url",
                cluster.url(),
            ],
            check=True,
            capture_output=True,
            env=runner_env,
            cwd=ROOT,
        )
    ready = threading.Event()
    holder = threading.Thread(target=hold_lock, args=(url, hold, ready)) if hold else None
    with Workload(url) as workload:
        time.sleep(QUIET)
        quiet = workload.between(0, time.perf_counter())
        if holder:
            holder.start()
            ready.wait()
        start = time.perf_counter()
        if tool == "release-runner":
            code = apply_with_runner(url, directory)
        else:
            code = apply_with_psql(url, directory)
        end = time.perf_counter()
        time.sleep(QUIET)
        during = workload.between(start, end)
        after = [s for s in workload.samples if s.started > end]
    if holder:
        holder.join()
    return quiet, during, after, f"exit {code} in {end - start:.1f} s"


def main() -> None:
    cluster = LocalCluster()
    cluster.start()
    rows: list[tuple[str, ...]] = []
    claims = []
    try:
        for scenario, hold in (("no other load", 0.0), (f"a transaction holds `items` for {HOLD:g} s", HOLD)):
            for tool in ("release-runner", "psql -1 -f"):
                with tempfile.TemporaryDirectory() as directory:
                    quiet, during, after, outcome = one_run(cluster, tool, hold, Path(directory))
                if tool == "release-runner":
                    rows.append((scenario, "no release", *summary(quiet, []), ""))
                stats = summary(during, after)
                rows.append((scenario, tool, *stats, outcome))
                if tool == "release-runner":
                    bound = LOCK_TIMEOUT * 1.1 * 1000
                    claims.append(
                        (scenario, float(stats[1]) <= bound and float(stats[2]) <= bound, stats[3] == "0")
                    )
    finally:
        cluster.stop("immediate")
        cluster.remove()
    table(
        f"App latency during a release ({CLIENTS} connections, previous release's queries; "
        f"release-runner --lock-timeout {LOCK_TIMEOUT:g}s)",
        rows,
        ("scenario", "while", "p50 ms", "p99 ms", "max ms", "failed", "queries", "release"),
    )
    for scenario, latency, failures in claims:
        print(
            f"- {scenario}: p99 and max within lock_timeout + 10 %: {'yes' if latency else 'NO'}; "
            f"no failed app query: {'yes' if failures else 'NO'}"
        )


if __name__ == "__main__":
    main()
