"""Deploy phases against a model, over random histories: releases that add pre-deploy and
post-deploy files, retried releases, releases without an identity, and post-deploy runs in
between, on a real PostgreSQL. After every run the database must hold exactly what the rules
say (README, Deploy phases): which migrations are applied, which wait and for which release;
verify must pass against the schema as it must be at that point; status must find no problem.

RELEASE_RUNNER_FAULT_SEED sets the seed (printed on failure)."""

from __future__ import annotations

import json
import os
import random
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from release_runner.db import connection
from tests.conftest import Server, cli_env, run_cli, write

TRIALS = 3
RELEASES = 5


@dataclass
class Model:
    """What the rules say the database holds."""

    applied: set[str] = field(default_factory=set)
    deferred: dict[str, str | None] = field(default_factory=dict)  # version -> release that deferred it

    def release_phase(self, files: dict[str, bool], release: str | None) -> None:
        fresh = not self.applied and not self.deferred
        for version, post_deploy in sorted(files.items()):
            if version in self.applied:
                continue
            earlier = self.deferred.get(version)
            if not post_deploy or fresh or (earlier and release and earlier != release):
                self.applied.add(version)
                self.deferred.pop(version, None)
            else:
                self.deferred.setdefault(version, release)

    def post_deploy_phase(self, files: dict[str, bool]) -> None:
        self.applied |= set(files)
        self.deferred.clear()


def _release_files(
    rng: random.Random, number: int, files: dict[str, str], posts: dict[str, bool], dropped: set[int]
) -> None:
    """Release `number` adds a table with a column to drop later, and perhaps a post-deploy file
    that drops the column of this or an earlier table. Versions grow with the releases: a new
    file that sorts before an applied one is refused, which is another test's matter."""
    version = f"{number:02d}0"
    files[f"{version}_t{number}.sql"] = f"CREATE TABLE t{number} (id int, old{number} int);\n"
    posts[version] = False
    droppable = [n for n in range(1, number + 1) if n not in dropped]
    if droppable and rng.random() < 0.7:
        target = rng.choice(droppable)
        dropped.add(target)
        version = f"{number:02d}5"
        files[f"{version}_drop_old{target}.sql"] = (
            f"-- release-runner: post-deploy\nALTER TABLE t{target} DROP COLUMN old{target};\n"
        )
        posts[version] = True


def _check(admin: psycopg.Connection[psycopg.rows.TupleRow], model: Model, where: str) -> None:
    applied = {row[0] for row in admin.execute("SELECT version FROM release_runner.history").fetchall()}
    deferred: dict[str, str | None] = dict(
        admin.execute("SELECT version, release_id FROM release_runner.deferred").fetchall()
    )
    assert applied == model.applied, where
    assert deferred == model.deferred, where


def test_random_release_histories_follow_the_rules(tmp_path: Path, server: Server) -> None:
    seed = int(os.environ.get("RELEASE_RUNNER_FAULT_SEED", secrets.randbits(32)))
    rng = random.Random(seed)
    for trial in range(TRIALS):
        name = f"phases_{trial}_{secrets.token_hex(3)}"
        connection.create_database(server.admin, name)
        url = server.url(name)
        try:
            with psycopg.connect(connection.with_dbname(server.admin, name), autocommit=True) as admin:
                model = Model()
                files: dict[str, str] = {}
                posts: dict[str, bool] = {}
                dropped: set[int] = set()
                release: str | None = None
                for number in range(1, RELEASES + 1):
                    _release_files(rng, number, files, posts, dropped)
                    directory = write(tmp_path / f"{trial}_{number}", files)
                    snapshot = run_cli(
                        "snapshot", "--migrations", str(directory), "--scratch-url", server.url("postgres")
                    )
                    assert snapshot.code == 0, snapshot.stdout
                    release = rng.choice([release, f"img:{number}", f"img:{number}", None])
                    for attempt in range(rng.choice([1, 1, 2])):  # a retry of the same release
                        env = cli_env(url, **({"FLY_IMAGE_REF": release} if release else {}))
                        where = f"seed {seed}, trial {trial}, release {number} ({release}), run {attempt}"
                        run = run_cli("migrate", "--migrations", str(directory), env=env)
                        assert run.code == 0, where + run.stdout[-3000:]
                        assert run.named("verify.passed"), where
                        model.release_phase(posts, release)
                        _check(admin, model, where)
                    status = run_cli("status", "--migrations", str(directory), "--format", "json", url=url)
                    assert status.code == 0, status.stdout
                    states = {m["version"]: m["state"] for m in json.loads(status.stdout)["migrations"]}
                    assert {v for v, s in states.items() if s == "deferred"} == set(model.deferred), where
                    if rng.random() < 0.3:
                        post = run_cli("migrate", "--migrations", str(directory), "--post-deploy", url=url)
                        assert post.code == 0 and post.named("verify.passed"), where + post.stdout[-3000:]
                        model.post_deploy_phase(posts)
                        _check(admin, model, where + ", then --post-deploy")
        finally:
            connection.drop_database(server.admin, name)
