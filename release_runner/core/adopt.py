"""Pure: match the history that drizzle-kit or Prisma kept in the database to migration files,
so a first run of release-runner imports what was applied instead of applying it again; and
tell a database that a push built (its objects there, no history anywhere) before a first
`migrate` fails on `already exists`.

drizzle-kit migrate keeps `drizzle.__drizzle_migrations(hash, created_at)`: hash is the SHA-256
of the file's text, created_at the journal entry's `when`. Prisma keeps `_prisma_migrations`
(migration_name = folder name, checksum = SHA-256 of migration.sql, finished_at, rolled_back_at).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from release_runner.core.detect import RELATION, created
from release_runner.core.migrations import Migration
from release_runner.core.statements import dotted_name, node


@dataclass(frozen=True)
class Adoption:
    """What a foreign history says: migrations it applied, and rows that match no file."""

    source: str
    applied: list[Migration]
    problems: list[str]
    edited: dict[str, str] = field(default_factory=dict)
    """Problems about a file it applied with another text, by the file's version: once the
    runner's own history has that version (imported earlier), its checksum judges the file
    (and `repair --accept-checksum` settles it), not the foreign row."""

    def unsettled(self, known: set[str]) -> list[str]:
        """The problems, but those about files the runner's own history already holds."""
        settled = {problem for version, problem in self.edited.items() if version in known}
        return [problem for problem in self.problems if problem not in settled]


def match_drizzle(rows: list[dict[str, Any]], migrations: list[Migration]) -> Adoption:
    by_hash = {m.raw_sha256: m for m in migrations}
    by_when = {m.drizzle_when: m for m in migrations if m.drizzle_when is not None}
    applied: list[Migration] = []
    problems: list[str] = []
    changed: dict[str, str] = {}
    for row in rows:
        match = by_hash.get(row["hash"])
        if match is not None:
            applied.append(match)
            continue
        edited = by_when.get(int(row["created_at"])) if row["created_at"] is not None else None
        if edited is not None:
            problems.append(
                f"{edited.path}: drizzle applied a different text of this file (hash "
                f"{row['hash'][:12]}...); restore the applied text and put the change in a new migration"
            )
            changed[edited.version] = problems[-1]
        else:
            problems.append(
                f"drizzle.__drizzle_migrations row id {row['id']} (created_at {row['created_at']}, hash "
                f"{row['hash'][:12]}...) matches no file in the journal; restore the file"
            )
    return Adoption("drizzle", applied, problems, changed)


def match_prisma(rows: list[dict[str, Any]], migrations: list[Migration]) -> Adoption:
    by_name = {m.version: m for m in migrations}
    applied: list[Migration] = []
    problems: list[str] = []
    changed: dict[str, str] = {}
    for row in rows:
        if row["rolled_back_at"] is not None:
            continue  # Prisma's record of a migration that was rolled back: not applied
        name = row["migration_name"]
        migration = by_name.get(name)
        if row["finished_at"] is None:
            problems.append(
                f"_prisma_migrations: {name} started but never finished (a failed Prisma "
                "migration); fix the database by hand, then mark it with `prisma migrate resolve`"
            )
        elif migration is None:
            problems.append(f"_prisma_migrations: {name} was applied but has no folder; restore it")
        elif row["checksum"] not in (migration.raw_sha256, migration.checksum):
            problems.append(
                f"{migration.path}: edited after Prisma applied it (checksum differs); restore "
                "the applied text and put the change in a new migration"
            )
            changed[migration.version] = problems[-1]
        else:
            applied.append(migration)
    return Adoption("prisma", applied, problems, changed)


FUNCTION = "function"  # besides detect's relations, schemas and types: what adoption looks for


def created_objects(migration: Migration) -> list[tuple[str, str]]:
    """(kind, name) of the relations (an index too), schemas, types and functions a migration
    creates outright: not with IF NOT EXISTS or OR REPLACE, which run on a database that has
    them already."""
    found = []
    for statement in migration.statements:
        kind, body = node(statement)
        if body.get("if_not_exists") or body.get("replace"):
            continue
        made = created(statement)
        if kind == "IndexStmt" and body.get("idxname"):
            schema = (body.get("relation") or {}).get("schemaname")
            made = (RELATION, f"{schema}.{body['idxname']}" if schema else str(body["idxname"]))
        elif kind == "CreateFunctionStmt":
            made = (FUNCTION, dotted_name(body.get("funcname", [])))
        if made is not None:
            found.append(made)
    return found


def built_without_history(
    pending: list[Migration], existing: set[tuple[str, str]]
) -> tuple[list[tuple[str, str]], Migration | None]:
    """On a database with no history: what the first pending migration creates that is there
    already (it would fail with `already exists`), and the newest pending migration up to which
    everything created is there (what `baseline --version` should say: a migration that
    creates nothing of these kinds does not decide, one with something missing ends the run;
    None when not even the first one is whole)."""
    first = [made for made in created_objects(pending[0]) if made in existing] if pending else []
    whole: Migration | None = None
    for migration in pending if first else []:
        made = created_objects(migration)
        if any(item not in existing for item in made):
            break
        whole = migration if made else whole
    return first, whole
