"""Catalog reads, one query each: the live schema for verification, a view rendered by this
server, an index's validity, table sizes, which schemas and types exist, column types for the
release-phase rules, and constraints and primary keys for the data checks. Every read that
renders a definition runs under fixed settings."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from release_runner.core.data_checks import Constraint
from release_runner.core.detect import Column
from release_runner.db.connection import Connection, query

# The settings that change how the catalog functions render a definition: names relative to
# search_path (pg_catalog alone: every other name comes out schema-qualified), constants in
# defaults and checks through the date, interval, float, bytea and time zone formats. Fixed for
# the catalog read, so that what a role, PGOPTIONS, the URL's options or a migration set for
# the session never changes the snapshot or the comparison.
_CATALOG_SETTINGS = {
    "search_path": "pg_catalog",
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "extra_float_digits": "1",
    "bytea_output": "hex",
    "quote_all_identifiers": "off",
    "standard_conforming_strings": "on",
}
_CATALOG_SETUP = "".join(
    f"SELECT pg_catalog.set_config('{name}', '{value}', true);" for name, value in _CATALOG_SETTINGS.items()
)


def fetch_catalog(conn: Connection, history_schema: str, read: str = "catalog") -> dict[str, Any]:
    """The live schema as raw rows (see queries/catalog.sql; with `read="health"`, only what
    verification checks without a snapshot, queries/health.sql), read in a transaction whose
    rendering settings are fixed (_CATALOG_SETTINGS), whatever the session's are."""
    with conn.transaction():
        conn.execute(_CATALOG_SETUP)
        row = conn.execute(query("scope") + query(read), {"history": history_schema}).fetchone()
    assert row is not None
    result: dict[str, Any] = row[0]
    return result


def render_view(conn: Connection, definition: str) -> str | None:
    """`definition` (a view's query, as another server rendered it) as this server renders it,
    with the catalog read's settings: a temporary view made and rolled back. None when this
    server cannot make it (an object it names is missing, no TEMP privilege)."""
    try:
        with conn.transaction() as transaction:
            conn.execute(_CATALOG_SETUP)
            conn.execute(
                sql.SQL("CREATE TEMP VIEW release_runner_render AS {}").format(
                    sql.SQL(definition.strip().removesuffix(";"))
                )
            )
            row = conn.execute(
                "SELECT pg_catalog.pg_get_viewdef('release_runner_render'::pg_catalog.regclass, true)"
            ).fetchone()
            raise psycopg.Rollback(transaction)
    except psycopg.Error:
        return None
    return str(row[0]).strip() if row else None


def index_state(conn: Connection, name: str) -> bool | None:
    """Whether the index `name` (schema-qualified or found through search_path) is valid;
    None when there is no such index."""
    row = conn.execute(
        "SELECT i.indisvalid FROM pg_catalog.pg_index i WHERE i.indexrelid = pg_catalog.to_regclass(%s)",
        (name,),
    ).fetchone()
    return None if row is None else bool(row[0])


def _quoted(name: str) -> str:
    """SQL that quotes a "schema.name" or "name" text column part by part, as written in a
    migration (already case-folded by the parser), for to_regclass and to_regtype."""
    return (
        f"CASE WHEN strpos({name}, '.') > 0 THEN quote_ident(split_part({name}, '.', 1)) || '.'"
        f" || quote_ident(split_part({name}, '.', 2)) ELSE quote_ident({name}) END"
    )


def table_sizes(conn: Connection, tables: list[str]) -> dict[str, dict[str, Any]]:
    """Estimated rows and on-disk size of existing tables, for preflight warnings."""
    rows = conn.execute(
        "SELECT t.name, c.reltuples::bigint, pg_total_relation_size(c.oid)"
        " FROM unnest(%s::text[]) AS t(name)"
        f" JOIN pg_class c ON c.oid = to_regclass({_quoted('t.name')})",
        (tables,),
    ).fetchall()
    # reltuples is -1 for a table never vacuumed or analysed: its rows are unknown, not 0
    return {
        name: {"estimated_rows": rows_ if rows_ >= 0 else None, "size_bytes": size}
        for name, rows_, size in rows
    }


_EXISTING = {
    "schema": "SELECT n FROM unnest(%s::text[]) AS n WHERE EXISTS"
    " (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = n)",
    "type": f"SELECT n FROM unnest(%s::text[]) AS n WHERE to_regtype({_quoted('n')}) IS NOT NULL",
    # any overload, in the named schema or, unqualified, one on search_path
    "function": "SELECT n FROM unnest(%s::text[]) AS n WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_proc p"
    " JOIN pg_catalog.pg_namespace s ON s.oid = p.pronamespace"
    " WHERE p.proname = regexp_replace(n, '^.*[.]', '')"
    " AND (s.nspname = split_part(n, '.', 1) AND strpos(n, '.') > 0"
    " OR strpos(n, '.') = 0 AND s.nspname = ANY (current_schemas(false))))",
}


def existing(conn: Connection, kind: str, names: list[str]) -> set[str]:
    """Which of these schemas, types or functions (`kind`) exist, for the release-phase rules
    and adoption."""
    return {row[0] for row in conn.execute(_EXISTING[kind], (names,)).fetchall()}


def columns(conn: Connection, tables: list[str]) -> dict[str, dict[str, Column]]:
    """Each column of these existing tables, as core/detect.py's Column (type, default, NOT
    NULL), for the release-phase rules (a widening, a NOT NULL the default fills or that was
    there already, a table re-created)."""
    rows = conn.execute(
        "SELECT t.name, a.attname, ty.typname, a.atttypmod, a.atthasdef, a.attnotnull"
        " FROM unnest(%s::text[]) AS t(name)"
        f" JOIN pg_attribute a ON a.attrelid = to_regclass({_quoted('t.name')})"
        " AND a.attnum > 0 AND NOT a.attisdropped"
        " JOIN pg_type ty ON ty.oid = a.atttypid",
        (tables,),
    ).fetchall()
    found: dict[str, dict[str, Column]] = {}
    for table, column, typname, typmod, has_default, not_null in rows:
        found.setdefault(table, {})[column] = Column((typname, typmod), has_default, not_null)
    return found


def foreign_key_columns(conn: Connection, columns: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (table, column) pairs are columns of a foreign key, for lock-ahead."""
    rows = conn.execute(
        "SELECT c.t, c.col FROM unnest(%s::text[], %s::text[]) AS c(t, col) WHERE EXISTS"
        " (SELECT 1 FROM pg_constraint k JOIN pg_attribute a ON a.attrelid = k.conrelid"
        " AND a.attnum = ANY (k.conkey) WHERE k.contype = 'f'"
        f" AND k.conrelid = to_regclass({_quoted('c.t')}) AND a.attname = c.col)",
        ([t for t, _ in columns], [c for _, c in columns]),
    ).fetchall()
    return {(table, column) for table, column in rows}


def enum_labels(conn: Connection, types: list[str]) -> dict[str, tuple[str, ...]]:
    """The labels of these existing enum types, in their order."""
    rows = conn.execute(
        "SELECT n, array_agg(e.enumlabel::text ORDER BY e.enumsortorder)"
        " FROM unnest(%s::text[]) AS n"
        f" JOIN pg_enum e ON e.enumtypid = to_regtype({_quoted('n')}) GROUP BY n",
        (types,),
    ).fetchall()
    return {name: tuple(labels) for name, labels in rows}


def _column_names(relation: str, numbers: str) -> str:
    """SQL for the names of `relation`'s columns numbered `numbers` (an int2[]), in its order."""
    return (
        f"ARRAY(SELECT a.attname::text FROM unnest({numbers}) WITH ORDINALITY AS k(n, i)"
        f" JOIN pg_attribute a ON a.attrelid = {relation} AND a.attnum = k.n ORDER BY k.i)"
    )


def constraints(conn: Connection, named: list[tuple[str, str]]) -> dict[tuple[str, str], Constraint]:
    """The CHECK and FOREIGN KEY constraints named (table, constraint) that exist, for the data
    checks of VALIDATE CONSTRAINT, as core/data_checks.py defines them."""
    rows = conn.execute(
        "SELECT w.t, w.name, c.contype, pg_get_expr(c.conbin, c.conrelid),"
        f" {_column_names('c.conrelid', 'c.conkey')}, rn.nspname || '.' || r.relname,"
        f" {_column_names('c.confrelid', 'c.confkey')}"
        " FROM unnest(%s::text[], %s::text[]) AS w(t, name)"
        f" JOIN pg_constraint c ON c.conrelid = to_regclass({_quoted('w.t')}) AND c.conname = w.name"
        " LEFT JOIN pg_class r ON r.oid = c.confrelid LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace"
        " WHERE c.contype IN ('c', 'f')",
        ([t for t, _ in named], [n for _, n in named]),
    ).fetchall()
    return {
        (table, name): Constraint(
            "check" if contype == "c" else "foreign-key",
            expression or "",
            tuple(own),
            referenced or "",
            tuple(theirs),
        )
        for table, name, contype, expression, own, referenced, theirs in rows
    }


def primary_keys(conn: Connection, tables: list[str]) -> dict[str, tuple[str, ...]]:
    """The primary key columns of these tables (those that have one): what REFERENCES t means."""
    rows = conn.execute(
        f"SELECT t.name, {_column_names('c.conrelid', 'c.conkey')} FROM unnest(%s::text[]) AS t(name)"
        f" JOIN pg_constraint c ON c.conrelid = to_regclass({_quoted('t.name')}) AND c.contype = 'p'",
        (tables,),
    ).fetchall()
    return {name: tuple(columns) for name, columns in rows}


class ProbeFailed(Exception):
    """A data probe did not answer: `timed_out`, or the server refused it (`sqlstate`);
    `data` when what it refused is a value (class 22: the cast a probe tries fails)."""

    def __init__(self, sqlstate: str | None, timed_out: bool = False) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate
        self.timed_out = timed_out
        self.data = (sqlstate or "").startswith("22")


def probe(conn: Connection, query: str, timeout: str) -> int:
    """The first column of `query`'s one row, read in a READ ONLY transaction of its own with
    `timeout` as its statement_timeout and lock_timeout (a data probe: it writes nothing and
    waits for no lock longer than that). Raises ProbeFailed."""
    settings = f"SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = '{timeout}'; "
    settings += f"SET LOCAL lock_timeout = '{timeout}'"
    try:
        with conn.transaction():
            conn.execute(settings.encode())
            row = conn.execute(query.encode()).fetchone()  # the migration's own SQL, as written
    except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as error:
        raise ProbeFailed(error.sqlstate, timed_out=True) from None
    except psycopg.errors.OperationalError:
        raise
    except psycopg.Error as error:
        raise ProbeFailed(error.sqlstate) from None
    return int(row[0]) if row and row[0] is not None else 0
