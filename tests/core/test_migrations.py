"""Reading migration directories (native, drizzle-kit, Prisma): names, order, directives,
checksums and statement splitting. Pure: no server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from release_runner.core.errors import UsageError
from release_runner.core.migrations import read_directory
from release_runner.core.statements import SqlSyntaxError
from tests.conftest import write


def test_native_order_is_numeric_not_lexical(tmp_path: Path) -> None:
    """`10_` sorts after `9_`; versions keep the digits as written."""
    write(tmp_path, {"10_ten.sql": "SELECT 10;", "9_nine.sql": "SELECT 9;", "0001_one.sql": "SELECT 1;"})
    found = read_directory(tmp_path)
    assert found.source_format == "native"
    assert [m.version for m in found.migrations] == ["0001", "9", "10"]
    assert [m.name for m in found.migrations] == ["one", "nine", "ten"]


def test_non_migration_files_are_left_alone(tmp_path: Path) -> None:
    """README, the snapshot and other non-.sql files are not migrations."""
    write(
        tmp_path,
        {"0001_a.sql": "SELECT 1;", "README.md": "x", "schema.snapshot.json": "{}", ".keep": ""},
    )
    assert [m.version for m in read_directory(tmp_path).migrations] == ["0001"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"1-foo.sql": ""}, "1-foo.sql: not a migration file name"),
        ({"0001_x.SQL": ""}, "0001_x.SQL: not a migration file name"),
        ({"v1_x.sql": ""}, "v1_x.sql"),
        ({"0001_a.sql": "", "001_b.sql": ""}, "also used by"),
        ({}, "no migrations found"),
    ],
)
def test_bad_directories_name_the_file(tmp_path: Path, files: dict[str, str], message: str) -> None:
    """Each kind of bad directory is a usage error (exit 2) naming the file."""
    write(tmp_path, files)
    with pytest.raises(UsageError, match=message) as raised:
        read_directory(tmp_path)
    assert raised.value.exit_code == 2


def test_checksum_ignores_bom_and_line_endings(tmp_path: Path) -> None:
    """LF, CRLF, CR and a leading BOM give one checksum; a real edit gives another."""
    texts = [b"SELECT 1;\nSELECT 2;\n", b"SELECT 1;\r\nSELECT 2;\r\n", b"\xef\xbb\xbfSELECT 1;\rSELECT 2;\r"]
    sums = set()
    for index, data in enumerate(texts):
        directory = tmp_path / str(index)
        directory.mkdir()
        (directory / "0001_a.sql").write_bytes(data)
        sums.add(read_directory(directory).migrations[0].checksum)
    assert len(sums) == 1
    write(tmp_path / "edit", {"0001_a.sql": "SELECT 1;\nSELECT 3;\n"})
    assert read_directory(tmp_path / "edit").migrations[0].checksum not in sums


def test_header_directives(tmp_path: Path) -> None:
    """Every header directive is read."""
    write(
        tmp_path,
        {
            "0001_a.sql": "-- intro\n-- release-runner: no-transaction\n-- release-runner: lock-timeout=30s\n"
            "-- release-runner: statement-timeout=2m\n-- release-runner: allow drop-table, truncate\n"
            "DROP TABLE x;\n",
        },
    )
    directives = read_directory(tmp_path).migrations[0].directives
    assert directives.no_transaction
    assert directives.lock_timeout == 30.0
    assert directives.statement_timeout == 120.0
    assert directives.allow == {"drop-table", "truncate"}


def test_unknown_directive_names_file_and_line(tmp_path: Path) -> None:
    """A misspelt directive is an error at its file and line, not ignored."""
    write(tmp_path, {"0001_a.sql": "-- ok\n-- release-runner: no-transation\nSELECT 1;\n"})
    with pytest.raises(UsageError, match=r"0001_a.sql:2: unknown directive 'no-transation'"):
        read_directory(tmp_path)


def test_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    """A file that is not UTF-8 is a usage error naming it."""
    (tmp_path / "0001_a.sql").write_bytes(b"SELECT '\xff';")
    with pytest.raises(UsageError, match="not UTF-8"):
        read_directory(tmp_path)


SPLIT = """\
-- leading comment; with a semicolon
CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM 1; /* nested /* comment; */ still; */
  RETURN 1;
END;
$fn$;
SELECT E'it''s; \\' quoted', 'é;';
/* block; */ SELECT 2
"""


def test_split_keeps_bodies_whole_and_positions_exact(tmp_path: Path) -> None:
    """Dollar quotes, nested comments, E'' strings and a missing final semicolon."""
    write(tmp_path, {"0001_a.sql": SPLIT})
    statements = read_directory(tmp_path).migrations[0].statements
    assert [s.kind for s in statements] == ["CreateFunctionStmt", "SelectStmt", "SelectStmt"]
    assert [(s.line, s.column) for s in statements] == [(2, 1), (8, 1), (9, 14)]
    assert statements[0].text.endswith("$fn$")
    assert statements[2].text == "SELECT 2"


def test_position_maps_offsets_back_to_the_file(tmp_path: Path) -> None:
    """Character offsets inside a statement map back to file line and column."""
    (tmp_path / "0001_a.sql").write_text("\n\n  SELECT 1,\n    é, nope;\n")
    statement = read_directory(tmp_path).migrations[0].statements[0]
    assert (statement.line, statement.column) == (3, 3)
    assert statement.position(statement.text.index("nope")) == (4, 8)
    assert statement.position(0) == (3, 3)


def test_syntax_error_position(tmp_path: Path) -> None:
    """A syntax error after non-ASCII text is placed at the right column."""
    write(tmp_path, {"0001_a.sql": "SELECT 1;\n-- é\nSELECT 2;\nCREATE TABEL x ();\n"})
    with pytest.raises(SqlSyntaxError) as raised:
        _ = read_directory(tmp_path).migrations[0].statements
    assert (raised.value.line, raised.value.column) == (4, 8)
    assert "TABEL" in raised.value.message


def test_parse_error_can_be_allowed_and_splits_by_scanner(tmp_path: Path) -> None:
    """A statement the bundled parser rejects runs when the file allows it."""
    write(
        tmp_path,
        {"0001_a.sql": "-- release-runner: allow parse-error\nSELECT 1;\nFUTURE SYNTAX 'a;b';\nSELECT 2\n"},
    )
    statements = read_directory(tmp_path).migrations[0].statements
    assert [s.text for s in statements] == ["SELECT 1", "FUTURE SYNTAX 'a;b'", "SELECT 2"]
    assert statements[1].node is None and statements[1].line == 3


def test_statement_level_allow_comment(tmp_path: Path) -> None:
    """An allow comment applies to the next statement only."""
    write(
        tmp_path,
        {"0001_a.sql": "SELECT 1;\n-- release-runner: allow drop-table\nDROP TABLE t;\nDROP TABLE u;\n"},
    )
    statements = read_directory(tmp_path).migrations[0].statements
    assert [set(s.allow) for s in statements] == [set(), {"drop-table"}, set()]


def _journal(entries: list[tuple[int, str]], dialect: str = "postgresql") -> str:
    return json.dumps(
        {
            "version": "7",
            "dialect": dialect,
            "entries": [
                {"idx": i, "version": "7", "when": 1700000000000 + i, "tag": tag, "breakpoints": True}
                for i, tag in entries
            ],
        }
    )


def test_drizzle_journal_gives_order_and_membership(tmp_path: Path) -> None:
    """The journal, not the listing: an unlisted file is ignored and reported; chunks split on
    breakpoints even when a chunk lacks its final semicolon."""
    write(
        tmp_path,
        {
            "meta/_journal.json": _journal([(0, "0000_first"), (1, "0001_second")], dialect="pg"),
            "0000_first.sql": 'CREATE TABLE "a" ("id" int);\n--> statement-breakpoint\nCREATE TABLE "b" ("id" int)\n'
            '--> statement-breakpoint\nALTER TABLE "b" ADD "x" int;',
            "0001_second.sql": "SELECT 1;",
            "0001_orphan.sql": "DROP TABLE a;",
        },
    )
    found = read_directory(tmp_path)
    assert found.source_format == "drizzle"
    assert [m.version for m in found.migrations] == ["0000", "0001"]
    assert [p.name for p in found.ignored] == ["0001_orphan.sql"]
    first = found.migrations[0]
    assert first.drizzle_when == 1700000000000
    assert [s.text for s in first.statements] == [
        'CREATE TABLE "a" ("id" int)',
        'CREATE TABLE "b" ("id" int)',
        'ALTER TABLE "b" ADD "x" int',
    ]
    assert [s.line for s in first.statements] == [1, 3, 5]


def test_drizzle_entry_without_file_is_an_error(tmp_path: Path) -> None:
    """A journal entry without its .sql file is a usage error."""
    write(tmp_path, {"meta/_journal.json": _journal([(0, "0000_gone")])})
    with pytest.raises(UsageError, match="0000_gone"):
        read_directory(tmp_path)


def test_prisma_folders_order_by_name(tmp_path: Path) -> None:
    """Folder name order whatever it looks like; the folder name is the version."""
    write(
        tmp_path,
        {
            "migration_lock.toml": 'provider = "postgresql"\n',
            "20240101000000_init/migration.sql": "CREATE TABLE a (id int);",
            "20231231_odd name/migration.sql": "CREATE TABLE b (id int)",
            "0_first/migration.sql": "",
        },
    )
    found = read_directory(tmp_path)
    assert found.source_format == "prisma"
    assert [m.version for m in found.migrations] == ["0_first", "20231231_odd name", "20240101000000_init"]
    assert found.migrations[1].name == "odd name"
    assert found.migrations[0].statements == []


def test_prisma_folder_without_sql_is_an_error(tmp_path: Path) -> None:
    """A Prisma migration folder without migration.sql is a usage error."""
    write(tmp_path, {"migration_lock.toml": "", "1_a/migration.sql": "SELECT 1;", "2_b/notes.txt": ""})
    with pytest.raises(UsageError, match=r"without migration\.sql"):
        read_directory(tmp_path)


def test_prisma_folder_for_another_database_is_refused(tmp_path: Path) -> None:
    """A Prisma folder whose lock file names MySQL is refused."""
    write(tmp_path, {"migration_lock.toml": 'provider = "mysql"\n', "1_a/migration.sql": "SELECT 1;"})
    with pytest.raises(UsageError, match="'mysql', not PostgreSQL"):
        read_directory(tmp_path)


def test_a_large_file_is_cut_at_its_real_semicolons(tmp_path: Path) -> None:
    """Over 1 MiB a file is first cut by a lexer that knows strings, E-strings, quoted names,
    comments and dollar quotes; small statements are then parsed as usual, a large one keeps its
    kind and position."""
    rows = ",\n".join(f"({i}, 'semi;colon {i}', E'esc\\'; {i}')" for i in range(30_000))
    text = (
        "CREATE TABLE t (id int, a text, b text);\n"
        "-- a comment; with a semicolon\n"
        f"INSERT INTO t VALUES\n{rows};\n"
        '/* block; comment */ CREATE TABLE "odd;name" (id int);\n'
        "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $body$ SELECT ';' $body$;\n"
    )
    assert len(text) > 1 << 20
    write(tmp_path, {"0001_big.sql": text})
    statements = read_directory(tmp_path).migrations[0].statements
    assert [s.kind for s in statements] == ["CreateStmt", "InsertStmt", "CreateStmt", "CreateFunctionStmt"]
    assert [s.line for s in statements] == [1, 3, 30_004, 30_005]
    assert statements[1].text.endswith("'esc\\'; 29999')")


# Full-width and Arabic-Indic digits, written as escapes (the characters look like 0002).
@pytest.mark.parametrize(
    "name", ["\uff10\uff10\uff10\uff12_b.sql", "\u0660\u0660\u0660\u0662_b.sql", "0002_b.sql ", " 0002_b.sql"]
)
def test_a_name_that_looks_like_a_migration_is_never_taken_or_skipped_silently(
    tmp_path: Path, name: str
) -> None:
    """Versions are ASCII digits; a name with white space around it is refused, not skipped."""
    write(tmp_path, {"0001_a.sql": "SELECT 1;\n", name: "SELECT 2;\n"})
    with pytest.raises(UsageError, match="not a migration file name"):
        read_directory(tmp_path)


def test_a_prisma_folder_named_like_a_file_is_a_prisma_migration(tmp_path: Path) -> None:
    """A folder that holds migration.sql is a Prisma migration whatever its name."""
    write(
        tmp_path,
        {
            "20240101000000_init/migration.sql": "CREATE TABLE a (id int);\n",
            "20240102000000_add.sql/migration.sql": "CREATE TABLE b (id int);\n",
        },
    )
    found = read_directory(tmp_path)
    assert found.source_format == "prisma"
    assert [m.version for m in found.migrations] == ["20240101000000_init", "20240102000000_add.sql"]
