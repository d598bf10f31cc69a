"""core/data_checks.py: which statements are probed, with which query, and which are left to
the migration because an earlier pending statement may change the rows first."""

from __future__ import annotations

from release_runner.core import data_checks
from release_runner.core.preflight import prepare_all
from tests.conftest import migration_value


def _plan(*files: str) -> tuple[list[data_checks.Probe], list[data_checks.Unknown]]:
    return data_checks.plan(
        prepare_all([migration_value(f"{i:04d}", text) for i, text in enumerate(files, 1)])
    )


def test_each_statement_the_data_can_refuse_has_a_probe() -> None:
    probes, unknown = _plan(
        "ALTER TABLE t ALTER COLUMN a SET NOT NULL, ADD CONSTRAINT c CHECK (a > 0);\n"
        "CREATE UNIQUE INDEX i ON s.t (lower(e)) WHERE d IS NULL;\n"
        "ALTER TABLE u ADD FOREIGN KEY (p) REFERENCES p (id), ALTER COLUMN b TYPE int USING b::int;\n"
    )
    assert unknown == []
    assert [(p.rule, p.table, p.columns) for p in probes] == [
        ("not-null", "t", ("a",)),
        ("check", "t", ()),
        ("unique", "s.t", ("lower(e)",)),
        ("foreign-key", "u", ("p",)),
        ("cast", "u", ("b",)),
    ]
    assert probes[1].query == 'SELECT 1 FROM "t" WHERE NOT (a > 0)'
    assert probes[2].query == (
        'SELECT 1 FROM "s"."t" WHERE (d IS NULL) AND (lower(e)) IS NOT NULL GROUP BY lower(e) HAVING count(*) > 1'
    )
    assert probes[4].kind == data_checks.CAST and "::integer" in probes[4].query


def test_new_tables_and_not_valid_constraints_are_not_probed() -> None:
    probes, unknown = _plan(
        "CREATE TABLE n (a int);\nALTER TABLE n ALTER COLUMN a SET NOT NULL;\n"
        "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;\nALTER TABLE t ADD COLUMN x int NOT NULL DEFAULT 0;\n"
    )
    assert probes == [] and unknown == []


def test_an_earlier_write_leaves_the_check_to_the_migration() -> None:
    """A backfill before the statement, in the same file or an earlier one, a DO block, or a
    search_path change: never probed ahead, reported unknown."""
    for files in (
        ("UPDATE t SET a = 0 WHERE a IS NULL;\nALTER TABLE t ALTER COLUMN a SET NOT NULL;\n",),
        ("DELETE FROM t WHERE id > 1;\n", "ALTER TABLE t ALTER COLUMN a SET NOT NULL;\n"),
        ("TRUNCATE s, t;\nALTER TABLE t ALTER COLUMN a SET NOT NULL;\n",),  # every table it names
        ("DO $$ BEGIN PERFORM 1; END $$;\nCREATE UNIQUE INDEX i ON t (a);\n",),
        ("SET search_path = app;\nALTER TABLE t ALTER COLUMN a SET NOT NULL;\n",),
        # a statement whose tree is not read (nested too deeply) may write anything
        (
            "INSERT INTO u "
            + " UNION ALL ".join(["SELECT 1"] * 1000)
            + ";\nALTER TABLE t ALTER a SET NOT NULL;\n",
        ),
    ):
        probes, unknown = _plan(*files)
        assert probes == [] and [u.table for u in unknown] == ["t"], files


def test_validate_uses_the_batch_or_the_catalog_definition() -> None:
    """VALIDATE CONSTRAINT of a constraint the release adds NOT VALID is probed with that
    definition; of one the catalog knows, with the catalog's; of one neither knows (a UNIQUE,
    a typo the server will refuse), not at all."""
    known = data_checks.Known(
        {("u", "fk"): data_checks.Constraint("foreign-key", own=("p",), referenced="s.p", theirs=("id",))},
        {"q": ("k1", "k2")},
    )
    probes, unknown = data_checks.plan(
        prepare_all(
            [
                migration_value("0001", "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;\n"),
                migration_value(
                    "0002",
                    "ALTER TABLE t VALIDATE CONSTRAINT c;\nALTER TABLE u VALIDATE CONSTRAINT fk;\n"
                    "ALTER TABLE u VALIDATE CONSTRAINT nothing_known;\n"
                    "ALTER TABLE v ADD FOREIGN KEY (a, b) REFERENCES q;\n",
                ),
            ]
        ),
        known,
    )
    assert unknown == []
    assert [(p.rule, p.table, p.statement.line) for p in probes] == [
        ("check", "t", 1),
        ("foreign-key", "u", 2),
        ("foreign-key", "v", 4),
    ]
    assert probes[0].query == 'SELECT 1 FROM "t" WHERE NOT (a > 0)'
    assert 'FROM "s"."p" r WHERE r."id" = t."p"' in probes[1].query
    assert 'r."k1" = t."a" AND r."k2" = t."b"' in probes[2].query
    assert data_checks.wanted(
        prepare_all([migration_value("0001", "ALTER TABLE u VALIDATE CONSTRAINT fk;")])
    ) == (
        [("u", "fk")],
        [],
    )


def test_what_changes_the_rows_a_probe_reads_leaves_it_unknown() -> None:
    """The referenced table written first (a parent row inserted), a table renamed or a column
    renamed (the name now means other rows), the same table named with its schema: unknown,
    never probed against rows that will not be there."""
    for files in (
        ("INSERT INTO p VALUES (7);\nALTER TABLE t ADD FOREIGN KEY (p) REFERENCES p (id);\n",),
        (
            "ALTER TABLE t RENAME TO old_t;\nALTER TABLE n RENAME TO t;\nALTER TABLE t ALTER a SET NOT NULL;\n",
        ),
        ("ALTER TABLE t RENAME a TO b;\nALTER TABLE t RENAME c TO a;\nCREATE UNIQUE INDEX i ON t (a);\n",),
        ("UPDATE t SET a = 0 WHERE a IS NULL;\n", "ALTER TABLE public.t ALTER COLUMN a SET NOT NULL;\n"),
        ("CREATE TABLE p (id int PRIMARY KEY);\nALTER TABLE t ADD FOREIGN KEY (p) REFERENCES p (id);\n",),
    ):
        probes, unknown = _plan(*files)
        assert probes == [] and len(unknown) == 1, files
