"""Verification without a snapshot reads only the INVALID indexes and NOT VALID constraints
(db/queries/health.sql): it must find exactly what the whole catalog read finds, in the same
scope (no system, runner or extension objects), and count what it looked at."""

from __future__ import annotations

from typing import Any

import psycopg

from release_runner.core import drift
from release_runner.core.objects import health_objects, objects_from_catalog
from release_runner.db import catalog

SCHEMA = """
CREATE TABLE a (id int PRIMARY KEY, n int);
CREATE TABLE b (id int PRIMARY KEY, a_id int);
ALTER TABLE a ADD CONSTRAINT a_positive CHECK (n > 0) NOT VALID;
ALTER TABLE b ADD CONSTRAINT b_a FOREIGN KEY (a_id) REFERENCES a NOT VALID;
CREATE SCHEMA other;
CREATE TABLE other.c (id int, "Odd Name" text);
CREATE INDEX "c odd" ON other.c ("Odd Name");
CREATE UNIQUE INDEX c_id ON other.c (id);
CREATE SCHEMA release_runner;
CREATE TABLE release_runner.history (version text);
CREATE INDEX history_version ON release_runner.history (version);
UPDATE pg_index SET indisvalid = false
 WHERE indexrelid IN ('other."c odd"'::regclass, 'release_runner.history_version'::regclass);
"""


def test_the_health_read_finds_what_the_whole_read_finds(admin: psycopg.Connection[Any]) -> None:
    admin.execute(SCHEMA)
    whole = objects_from_catalog(catalog.fetch_catalog(admin, "release_runner"))
    raw = catalog.fetch_catalog(admin, "release_runner", "health")
    found = drift.health(health_objects(raw), None)
    assert [m.as_event() for m in found] == [m.as_event() for m in drift.health(whole, None)]
    assert sorted((m.kind.value, m.name) for m in found) == [
        ("invalid", "other.c odd"),
        ("unvalidated", "public.a.a_positive"),
        ("unvalidated", "public.b.b_a"),
    ]
    # two primary keys, two NOT VALID constraints, two indexes of other.c and the two pkey indexes
    assert raw["checked"] == len(whole["constraint"]) + len(whole["index"]) == 8
