"""The expected schema: turn a catalog read (see queries/catalog.sql) into a plain, deterministic
value; read and write the snapshot file. drift.py lists the differences between two such values.

Pure: the catalog is fetched by db.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from release_runner.core.errors import UsageError

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
