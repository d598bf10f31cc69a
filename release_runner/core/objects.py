"""Pure: a catalog read (see db/queries/catalog.sql) turned into the plain, deterministic value
the snapshot holds and drift.py compares: every object keyed by kind and qualified name, with
only what an application depends on. One small reader per section of the read."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from release_runner.core.statements import quote_ident

Objects = dict[str, dict[str, dict[str, Any]]]
Rows = Iterable[Any]

_RELKIND = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view"}
_CONTYPE = {"p": "primary key", "u": "unique", "c": "check", "f": "foreign key", "x": "exclusion"}
_PROKIND = {"f": "function", "p": "procedure", "a": "aggregate", "w": "window"}
_VOLATILITY = {"i": "immutable", "s": "stable", "v": "volatile"}
_POLCMD = {"*": "all", "r": "select", "a": "insert", "w": "update", "d": "delete"}
_IDENTITY = {"a": "always", "d": "by default"}
_PERSISTENCE = {"p": None, "u": "unlogged"}  # permanent is the default and left out
_REPLICA_IDENTITY = {"d": None, "n": "nothing", "f": "full", "i": "index"}
_TRIGGER_ENABLED = {"O": "enabled", "D": "disabled", "R": "replica", "A": "always"}
# The role that runs the migrations owns what they create: in a scratch replay that is the
# scratch server's user, in production the app's migration role. Both read as this.
RUNNER = "(runner)"
DEFAULT_PRIVILEGES = "default privileges"  # a kind of object: ALTER DEFAULT PRIVILEGES, by role
_STORAGE = {"p": "plain", "e": "external", "m": "main", "x": "extended"}
_DEFAULT_ACL_KIND = {"r": "tables", "S": "sequences", "f": "functions", "T": "types", "n": "schemas"}


def _drop_none(attrs: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in attrs.items() if value is not None}


def objects_from_catalog(raw: dict[str, Any], schema_as: tuple[str, str] | None = None) -> Objects:
    """Key every object by type and qualified name; keep only what an application depends on.
    `schema_as` (source, target): function definitions are hashed as if they were in target."""
    columns = _columns(raw["columns"])
    owned = _sequence_columns(raw["sequence_columns"], columns)
    objects: Objects = {
        "schema": {name: {} for name in raw["schemas"]},
        "table": _tables(raw["tables"]),
        "column": columns,
        "constraint": _constraints(raw["constraints"]),
        "index": _indexes(raw["indexes"]),
        "enum": {f"{schema}.{name}": {"labels": labels} for schema, name, labels in raw["enums"]},
        "sequence": _sequences(raw["sequences"], owned),
        "view": {
            f"{schema}.{name}": _drop_none(
                {"kind": _RELKIND[relkind], "definition": definition.strip(), "options": options}
            )
            for schema, name, relkind, definition, options in raw["views"]
        },
        "function": _functions(raw["functions"], schema_as),
        "trigger": {
            f"{schema}.{table}.{name}": {"definition": definition, "enabled": _TRIGGER_ENABLED.get(on, on)}
            for schema, table, name, definition, on in raw["triggers"]
        },
        "extension": {
            name: {"schema": schema, "version": version} for name, schema, version in raw["extensions"]
        },
        "policy": _policies(raw["policies"]),
        "domain": {
            f"{schema}.{name}": _drop_none(
                {"type": base, "nullable": not notnull, "default": default, "constraints": checks}
            )
            for schema, name, base, notnull, default, checks in raw["domains"]
        },
        "type": {
            f"{schema}.{name}": {"attributes": attributes} for schema, name, attributes in raw["composites"]
        },
        "rule": {
            f"{schema}.{table}.{name}": {"definition": definition}
            for schema, table, name, definition in raw["rules"]
        },
        "statistics": {
            f"{schema}.{table}.{name}": {"definition": definition}
            for schema, table, name, definition in raw["statistics"]
        },
        DEFAULT_PRIVILEGES: {
            f"{role} in {schema or 'every schema'} on {_DEFAULT_ACL_KIND.get(kind, kind)}": {"acl": acl}
            for role, schema, kind, acl in raw["default_privileges"]
        },
    }
    _add_privileges(objects, raw["privileges"], raw["runner"])
    return objects


def health_objects(raw: dict[str, Any]) -> Objects:
    """The INVALID indexes and NOT VALID constraints of a health read (db/queries/health.sql),
    keyed as objects_from_catalog() keys them: all that drift.health() looks at."""
    return {"constraint": _constraints(raw["constraints"]), "index": _indexes(raw["indexes"])}


def _tables(rows: Rows) -> dict[str, dict[str, Any]]:
    return {
        f"{schema}.{table}": _drop_none(
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
        for schema, table, relkind, rls, force_rls, persistence, replica, key, bound, parents in rows
    }


def _columns(by_field: list[Any]) -> dict[str, dict[str, Any]]:
    """The most numerous objects: they come one array per field (each null when there are no
    columns), and are built field by field, absent values left out, with no second pass."""
    columns: dict[str, dict[str, Any]] = {}
    for schema, table, column, type_, notnull, default, identity, generated, collation, storage, acl in (
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
        if storage is not None:
            attrs["storage"] = _STORAGE[storage]
        if acl is not None:
            attrs["acl"] = acl  # the runner's role is named RUNNER in _add_privileges
        columns[f"{schema}.{table}.{column}"] = attrs
    return columns


def _sequence_columns(rows: Rows, columns: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Identity columns get their sequence's options; returns the column that owns each
    serial's sequence."""
    owned: dict[str, str] = {}
    for deptype, seq_schema, sequence, schema, table, column, start, step, low, high, cycle in rows:
        name = f"{schema}.{table}.{column}"
        if deptype == "i" and name in columns:
            options = {"start": start, "increment": step, "min": low, "max": high, "cycle": cycle}
            columns[name]["identity_options"] = options
        elif deptype == "a":
            owned[f"{seq_schema}.{sequence}"] = name
    return owned


def _constraints(rows: Rows) -> dict[str, dict[str, Any]]:
    return {
        f"{schema}.{table}.{name}": {
            "table": f"{schema}.{table}",
            "type": _CONTYPE[contype],
            # NOT VALID is what `validated` says; in the definition too it would make a
            # constraint validated by hand look redefined.
            "definition": definition.removesuffix(" NOT VALID"),
            "validated": validated,
        }
        for schema, table, name, contype, definition, validated in rows
    }


def _indexes(rows: Rows) -> dict[str, dict[str, Any]]:
    indexes = {}
    for schema, table, name, quoted, definition, unique, valid in rows:
        # Compare what the index does, not what it is called: drop "<name> " after INDEX.
        head = f"CREATE {'UNIQUE ' if unique else ''}INDEX "
        indexes[f"{schema}.{name}"] = {
            "table": f"{schema}.{table}",
            "definition": head + definition.removeprefix(f"{head}{quoted} "),
            "unique": unique,
            "valid": valid,
        }
    return indexes


def _sequences(rows: Rows, owned: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {
        f"{schema}.{name}": _drop_none(
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
        for schema, name, type_, start, increment, minimum, maximum, cycle in rows
    }


def _functions(rows: Rows, schema_as: tuple[str, str] | None) -> dict[str, dict[str, Any]]:
    """Functions with an MD5 of their whole definition (what PostgreSQL's md5() of it gives);
    `schema_as` renames the schema its header names first (a tenant's schema read as the
    snapshot's). STRICT and the SET clauses (`config`, e.g. `search_path=public`) are also
    kept on their own, always (false, []), so that a difference names them; a snapshot without
    them was taken before they were (drift.py leaves them out of the comparison then)."""
    return {
        f"{schema}.{name}({args})": _drop_none(
            {
                "kind": _PROKIND.get(prokind, prokind),
                "returns": result,
                "language": language,
                "volatility": _VOLATILITY.get(volatility, volatility),
                "security_definer": secdef or None,
                "strict": bool(strict),
                "config": sorted(config),
                "body_md5": _md5(body, schema_as),
            }
        )
        for schema, name, args, prokind, result, language, volatility, secdef, strict, config, body in rows
    }


def _md5(definition: str | None, schema_as: tuple[str, str] | None) -> str | None:
    if definition is None:
        return None
    if schema_as is not None:
        source, target = schema_as
        header = re.compile(r"^(CREATE OR REPLACE (?:FUNCTION|PROCEDURE) )" + _written(source))
        definition = header.sub(lambda match: f"{match.group(1)}{target}.", definition, count=1)
    return hashlib.md5(definition.encode()).hexdigest()


def _written(schema: str) -> str:
    """A pattern of `schema.` as the catalog renders it: bare where it can be, else quoted."""
    return '(?:(?<![\\w"$])' + re.escape(schema) + "\\.|" + re.escape(quote_ident(schema)) + "\\.)"


def _policies(rows: Rows) -> dict[str, dict[str, Any]]:
    return {
        f"{schema}.{table}.{name}": _drop_none(
            {
                "command": _POLCMD.get(cmd, cmd),
                "permissive": permissive,
                "roles": roles,
                "using": qual,
                "with_check": check,
            }
        )
        for schema, table, name, cmd, permissive, roles, qual, check in rows
    }


def _add_privileges(objects: Objects, rows: Rows, runner: str) -> None:
    """Owners and ACLs, on the objects they belong to, with the runner's role as RUNNER (in
    column-level and default ACLs too, and as the role that default privileges belong to)."""
    for kind, name, owner, acl in rows:
        if kind == "schema" and name not in objects["schema"]:
            objects["schema"][name] = {}  # public: its privileges matter, its presence is a given
        target = objects[kind].get(name)
        if target is not None:
            target["owner"] = RUNNER if owner == runner else owner
            target["acl"] = sorted(_runner_in_acl(item, runner) for item in acl)
    for column in objects["column"].values():
        if "acl" in column:
            column["acl"] = sorted(_runner_in_acl(item, runner) for item in column["acl"])
    objects[DEFAULT_PRIVILEGES] = {
        (RUNNER + name[len(runner) :] if name.startswith(f"{runner} in ") else name): {
            "acl": sorted(_runner_in_acl(item, runner) for item in attrs["acl"])
        }
        for name, attrs in objects[DEFAULT_PRIVILEGES].items()
    }


def _runner_in_acl(item: str, runner: str) -> str:
    """`grantee=privileges/grantor` with the runner's role name replaced on either side."""
    grantee, _, rest = item.partition("=")
    privileges, _, grantor = rest.partition("/")
    grantee = RUNNER if grantee == runner else grantee
    grantor = RUNNER if grantor == runner else grantor
    return f"{grantee}={privileges}/{grantor}"


def as_schema(objects: Objects, source: str, target: str) -> Objects:
    """The objects of schema `source` alone, named as if they were in `target`, for a tenant's
    schema compared with the snapshot's `public` (schema-per-tenant fleets). The schema's name
    inside definitions (`source.t`, `"Source".t`) is replaced too. Left out: objects of other
    schemas, extensions (they belong to the database), and the schemas themselves (who owns a
    tenant's schema, and who may use it, is the provisioning's business, not the migrations')."""
    written = re.compile(_written(source))
    prefix = f"{source}."

    def renamed(value: Any) -> Any:
        if isinstance(value, str):
            return written.sub(f"{target}.", value)
        if isinstance(value, dict):
            return {key: renamed(item) for key, item in value.items()}
        if isinstance(value, list):
            return [renamed(item) for item in value]
        return value

    scoped: Objects = {}
    for kind, items in objects.items():
        if kind not in ("schema", "extension"):
            kept = {
                f"{target}.{name[len(prefix) :]}": renamed(attrs)
                for name, attrs in items.items()
                if name.startswith(prefix)
            }
            scoped[kind] = kept
    return scoped


def without_tables(objects: Objects, tables: set[str]) -> Objects:
    """The objects less these tables ("schema.table") and what belongs to them (columns,
    constraints, indexes, triggers, policies, rules, the sequences they own), and less a schema
    left empty by that: the history drizzle-kit or Prisma kept, which the runner reads and no
    migration creates."""
    prefixes = tuple(f"{table}." for table in tables)

    def belongs(name: str, attrs: dict[str, Any]) -> bool:
        owner = str(attrs.get("table") or attrs.get("owned_by") or "")
        return name in tables or name.startswith(prefixes) or owner in tables or owner.startswith(prefixes)

    kept = {
        kind: {name: attrs for name, attrs in items.items() if not belongs(name, attrs)}
        for kind, items in objects.items()
    }
    used = {name.split(".", 1)[0] for kind, items in kept.items() if kind != "schema" for name in items}
    emptied = {table.split(".", 1)[0] for table in tables} - used
    kept["schema"] = {name: attrs for name, attrs in kept.get("schema", {}).items() if name not in emptied}
    return kept
