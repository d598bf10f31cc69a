"""The expected schema: turn a catalog read (see queries/catalog.sql) into a plain, deterministic
value; read and write the snapshot file; list every difference between two such values.

Pure: the catalog is fetched by db.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from release_runner.errors import UsageError

FORMAT = "release-runner/schema-snapshot"
# 2: definitions are rendered with search_path = pg_catalog (every name schema-qualified),
# whatever the session's search_path; a version 1 file is refused with "regenerate it".
FORMAT_VERSION = 2

Objects = dict[str, dict[str, dict[str, Any]]]

_RELKIND = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view"}
_CONTYPE = {"p": "primary key", "u": "unique", "c": "check", "f": "foreign key", "x": "exclusion"}
_PROKIND = {"f": "function", "p": "procedure", "a": "aggregate", "w": "window"}
_VOLATILITY = {"i": "immutable", "s": "stable", "v": "volatile"}
_POLCMD = {"*": "all", "r": "select", "a": "insert", "w": "update", "d": "delete"}
_IDENTITY = {"a": "always", "d": "by default"}
_PERSISTENCE = {"p": None, "u": "unlogged"}  # permanent is the default and left out
_REPLICA_IDENTITY = {"d": None, "n": "nothing", "f": "full", "i": "index"}
_TRIGGER_ENABLED = {"O": "enabled", "D": "disabled", "R": "replica", "A": "always"}
# Objects whose names PostgreSQL may generate: matched by meaning when the names differ.
_RENAMEABLE = ("constraint", "index")


def _drop_none(attrs: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in attrs.items() if value is not None}


def objects_from_catalog(raw: dict[str, Any]) -> Objects:
    """Key every object by type and qualified name; keep only what an application depends on."""
    objects: Objects = {
        kind: {}
        for kind in (
            "schema",
            "table",
            "column",
            "constraint",
            "index",
            "enum",
            "sequence",
            "view",
            "function",
            "trigger",
            "extension",
            "policy",
            "domain",
            "type",
            "rule",
        )
    }
    for name in raw["schemas"]:
        objects["schema"][name] = {}
    for schema, table, relkind, rls, force_rls, persistence, replica, key, bound, parents in raw["tables"]:
        objects["table"][f"{schema}.{table}"] = _drop_none(
            {
                "kind": _RELKIND[relkind],
                "row_level_security": rls or None,
                "force_row_level_security": force_rls or None,
                "persistence": _PERSISTENCE.get(persistence, persistence),
                "replica_identity": _REPLICA_IDENTITY.get(replica, replica),
                "partition_key": key,
                "partition_bound": bound,
                "parents": parents,
            }
        )
    columns = objects["column"]
    owned: dict[str, str] = {}  # sequence -> the column that owns it
    # The most numerous objects: built field by field, absent values left out, no second pass.
    by_field = raw["columns"]  # one array per field; each is null when there are no columns
    for schema, table, column, type_, notnull, default, identity, generated, collation in (
        zip(*by_field, strict=True) if by_field[0] is not None else ()
    ):
        attrs: dict[str, Any] = {"type": type_, "nullable": not notnull}
        if default is not None:
            attrs["default"] = default
        if identity:
            attrs["identity"] = _IDENTITY[identity]
        if generated is not None:
            attrs["generated"] = generated
        if collation is not None:
            attrs["collation"] = collation
        columns[f"{schema}.{table}.{column}"] = attrs
    for deptype, seq_schema, sequence, schema, table, column, start, step, low, high, cycle in raw[
        "sequence_columns"
    ]:
        if deptype == "i" and f"{schema}.{table}.{column}" in columns:
            columns[f"{schema}.{table}.{column}"]["identity_options"] = {
                "start": start,
                "increment": step,
                "min": low,
                "max": high,
                "cycle": cycle,
            }
        elif deptype == "a":
            owned[f"{seq_schema}.{sequence}"] = f"{schema}.{table}.{column}"
    for schema, table, name, contype, definition, validated in raw["constraints"]:
        objects["constraint"][f"{schema}.{table}.{name}"] = {
            "table": f"{schema}.{table}",
            "type": _CONTYPE[contype],
            # NOT VALID is what `validated` says; in the definition too it would make a
            # constraint validated by hand look redefined.
            "definition": definition.removesuffix(" NOT VALID"),
            "validated": validated,
        }
    for schema, table, name, quoted, definition, unique, valid in raw["indexes"]:
        # Compare what the index does, not what it is called: drop "<name> " after INDEX.
        head = f"CREATE {'UNIQUE ' if unique else ''}INDEX "
        objects["index"][f"{schema}.{name}"] = {
            "table": f"{schema}.{table}",
            "definition": head + definition.removeprefix(f"{head}{quoted} "),
            "unique": unique,
            "valid": valid,
        }
    for schema, name, labels in raw["enums"]:
        objects["enum"][f"{schema}.{name}"] = {"labels": labels}
    for schema, name, type_, start, increment, minimum, maximum, cycle in raw["sequences"]:
        objects["sequence"][f"{schema}.{name}"] = _drop_none(
            {
                "type": type_,
                "start": start,
                "increment": increment,
                "min": minimum,
                "max": maximum,
                "cycle": cycle,
                "owned_by": owned.get(f"{schema}.{name}"),
            }
        )
    for schema, name, relkind, definition, options in raw["views"]:
        objects["view"][f"{schema}.{name}"] = _drop_none(
            {"kind": _RELKIND[relkind], "definition": definition.strip(), "options": options}
        )
    for schema, name, args, prokind, result, language, volatility, secdef, body in raw["functions"]:
        objects["function"][f"{schema}.{name}({args})"] = _drop_none(
            {
                "kind": _PROKIND.get(prokind, prokind),
                "returns": result,
                "language": language,
                "volatility": _VOLATILITY.get(volatility, volatility),
                "security_definer": secdef or None,
                "body_md5": body,
            }
        )
    for schema, table, name, definition, enabled in raw["triggers"]:
        objects["trigger"][f"{schema}.{table}.{name}"] = {
            "definition": definition,
            "enabled": _TRIGGER_ENABLED.get(enabled, enabled),
        }
    for name, schema, version in raw["extensions"]:
        objects["extension"][name] = {"schema": schema, "version": version}
    for schema, name, base, notnull, default, checks in raw["domains"]:
        objects["domain"][f"{schema}.{name}"] = _drop_none(
            {"type": base, "nullable": not notnull, "default": default, "constraints": checks}
        )
    for schema, name, attributes in raw["composites"]:
        objects["type"][f"{schema}.{name}"] = {"attributes": attributes}
    for schema, table, name, definition in raw["rules"]:
        objects["rule"][f"{schema}.{table}.{name}"] = {"definition": definition}
    runner = raw["runner"]
    for kind, name, owner, acl in raw["privileges"]:
        if kind == "schema" and name not in objects["schema"]:
            objects["schema"][name] = {}  # public: its privileges matter, its presence is a given
        target = objects[kind].get(name)
        if target is not None:
            target["owner"] = _RUNNER if owner == runner else owner
            target["acl"] = sorted(_runner_in_acl(item, runner) for item in acl)
    for schema, table, name, cmd, permissive, roles, qual, check in raw["policies"]:
        objects["policy"][f"{schema}.{table}.{name}"] = _drop_none(
            {
                "command": _POLCMD.get(cmd, cmd),
                "permissive": permissive,
                "roles": roles,
                "using": qual,
                "with_check": check,
            }
        )
    return objects


# The role that runs the migrations owns what they create: in a scratch replay that is the
# scratch server's user, in production the app's migration role. Both read as this.
_RUNNER = "(runner)"
_PRIVILEGED = ("owner", "acl")


def _runner_in_acl(item: str, runner: str) -> str:
    """`grantee=privileges/grantor` with the runner's role name replaced on either side."""
    grantee, _, rest = item.partition("=")
    privileges, _, grantor = rest.partition("/")
    grantee = _RUNNER if grantee == runner else grantee
    grantor = _RUNNER if grantor == runner else grantor
    return f"{grantee}={privileges}/{grantor}"


def without_privileges(objects: Objects) -> Objects:
    """The same objects with owners and privileges left out (`--ignore-privileges`, for teams
    whose roles differ between environments)."""
    return {
        kind: {
            name: {k: v for k, v in attrs.items() if k not in _PRIVILEGED} for name, attrs in items.items()
        }
        for kind, items in objects.items()
    }


def _unprivileged(attrs: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in attrs.items() if key not in _PRIVILEGED}


@dataclass(frozen=True, eq=False, repr=False)
class Snapshot:
    """An expected schema, and the PostgreSQL major version it was taken on (definitions of
    views and defaults render differently from one major version to the next)."""

    objects: Objects
    server_major: int | None
    post_deploy: dict[str, Objects] = field(default_factory=dict)
    """Per post-deploy migration, the definitions it changed as they were before it ran."""


def dump(snapshot: Snapshot) -> str:
    """The snapshot file's text: sorted, two-space indented, one object per block, no OIDs or
    timestamps, so that the same schema always gives the same bytes."""
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "server_major": snapshot.server_major,
        "objects": snapshot.objects,
        # Only when there are post-deploy migrations: other snapshots stay byte for byte as before.
        **({"post_deploy": snapshot.post_deploy} if snapshot.post_deploy else {}),
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def load(path: Path) -> Snapshot | None:
    """Read a snapshot file; None when it does not exist."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise UsageError(
            f"{path}: not a readable snapshot ({error}); regenerate it with `release-runner snapshot`",
            file=str(path),
        ) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise UsageError(f"{path}: not a release-runner snapshot; regenerate it", file=str(path))
    if document.get("format_version") != FORMAT_VERSION:
        raise UsageError(
            f"{path}: snapshot format {document.get('format_version')} is not supported by this "
            f"version (expects {FORMAT_VERSION}); regenerate it with `release-runner snapshot`",
            file=str(path),
        )
    return Snapshot(document["objects"], document.get("server_major"), document.get("post_deploy", {}))


@dataclass(frozen=True)
class Mismatch:
    """One difference: `kind` is missing, changed, extra, invalid (an INVALID index) or
    unvalidated (a NOT VALID constraint the snapshot does not expect)."""

    kind: str
    object_type: str
    name: str
    expected: Any = None
    actual: Any = None

    @property
    def fails(self) -> bool:
        """Extras, unvalidated or hand-validated constraints and renames warn (`--strict` fails
        them); the rest fail."""
        return self.kind not in ("extra", "unvalidated", "validated", "renamed")

    def describe(self) -> str:
        if self.kind == "missing":
            return f"missing {self.object_type} {self.name}"
        if self.kind == "extra":
            return f"extra {self.object_type} {self.name} (only in the database)"
        if self.kind in ("invalid", "unvalidated"):
            return f"{self.object_type} {self.name}: {self.actual}"
        if self.kind == "renamed":
            return (
                f"renamed {self.object_type} {self.expected} to {self.actual} (same definition; "
                "statements that name it, such as ON CONFLICT ON CONSTRAINT, break)"
            )
        if self.kind == "validated":
            return f"{self.object_type} {self.name}: validated by hand, NOT VALID in the snapshot (stricter)"
        expected, found = json.dumps(self.expected, sort_keys=True), json.dumps(self.actual, sort_keys=True)
        return f"changed {self.object_type} {self.name}: expected {expected}, found {found}"

    def as_event(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "object_type": self.object_type,
            "name": self.name,
            "expected": self.expected,
            "actual": self.actual,
        }


def diff(expected: Objects, actual: Objects) -> list[Mismatch]:
    """Every difference between the expected and the live schema, in a stable order."""
    found: list[Mismatch] = []
    for object_type in sorted(set(expected) | set(actual)):
        want = expected.get(object_type, {})
        have = actual.get(object_type, {})
        if want == have:  # the usual case, compared in C: no need to look name by name
            continue
        missing = [name for name in want if name not in have]
        extra = [name for name in have if name not in want]
        if object_type in _RENAMEABLE:
            missing, extra, renamed = _pair_renamed(want, have, missing, extra)
            found.extend(Mismatch("renamed", object_type, new, old, new) for old, new in renamed)
        found.extend(Mismatch("missing", object_type, name, want[name]) for name in missing)
        for name, wanted in want.items():
            found_attrs = have.get(name)
            if found_attrs is None or found_attrs == wanted:
                continue
            changed = {k for k in set(wanted) | set(found_attrs) if wanted.get(k) != found_attrs.get(k)}
            if changed:
                # A NOT VALID constraint someone validated by hand: stricter, not drift.
                stricter = changed == {"validated"} and found_attrs.get("validated") is True
                found.append(
                    Mismatch(
                        "validated" if stricter else "changed",
                        object_type,
                        name,
                        {k: wanted.get(k) for k in sorted(changed)},
                        {k: found_attrs.get(k) for k in sorted(changed)},
                    )
                )
        found.extend(Mismatch("extra", object_type, name, None, have[name]) for name in extra)
    return sorted(found, key=lambda m: (m.object_type, m.name, m.kind))


def _pair_renamed(
    want: dict[str, dict[str, Any]],
    have: dict[str, dict[str, Any]],
    missing: list[str],
    extra: list[str],
) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """Pair missing and extra objects that differ only in their name: the names PostgreSQL
    generates change between versions, so a pair is no failure, but it is reported (a warning),
    since `ON CONFLICT ON CONSTRAINT name` and the like break on a rename."""
    unmatched = list(extra)
    still_missing = []
    renamed = []
    for name in missing:
        twin = next((other for other in unmatched if have[other] == want[name]), None)
        if twin is None:
            still_missing.append(name)
        else:
            unmatched.remove(twin)
            renamed.append((name, twin))
    return still_missing, unmatched, renamed


def health(actual: Objects, expected: Objects | None) -> list[Mismatch]:
    """Checks that need no snapshot: an INVALID index (left by a failed CREATE INDEX
    CONCURRENTLY) always fails. A NOT VALID constraint is flagged unless the snapshot expects
    it; without a snapshot it only warns, since projects add constraints NOT VALID on purpose
    (trigger.dev's history does) and nothing else tells intent from accident."""
    found = []
    for name, index in actual.get("index", {}).items():
        if not index["valid"]:
            found.append(
                Mismatch(
                    "invalid",
                    "index",
                    name,
                    None,
                    f"INVALID (a failed CREATE INDEX CONCURRENTLY?); DROP INDEX CONCURRENTLY {name} "
                    "and rerun the migration that builds it",
                )
            )
    expected_constraints = (expected or {}).get("constraint", {})
    for name, constraint in actual.get("constraint", {}).items():
        intended = expected_constraints.get(name, {}).get("validated") is False
        if not constraint["validated"] and not intended:
            found.append(
                Mismatch(
                    "unvalidated",
                    "constraint",
                    name,
                    None,
                    f"NOT VALID; ALTER TABLE {constraint['table']} VALIDATE CONSTRAINT "
                    f"{name.rsplit('.', 1)[-1]}, or record it NOT VALID in the snapshot",
                )
            )
    return found


def compare(expected: Objects | None, actual: Objects) -> list[Mismatch]:
    """diff() when there is a snapshot, plus health(), without reporting an object twice."""
    found = diff(expected, actual) if expected is not None else []
    reported = {(m.object_type, m.name) for m in found if m.fails}
    found.extend(m for m in health(actual, expected) if (m.object_type, m.name) not in reported)
    return found
