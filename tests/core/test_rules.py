"""core/rules.py: one registry; every rule has what a person needs in each phase it judges."""

from __future__ import annotations

from release_runner.core import net_effect
from release_runner.core.rules import RULES, Severity, allowed
from tests.conftest import migration_value


def test_every_rule_has_words_for_the_phases_it_judges() -> None:
    """A linted rule has a message and a fix; a release-phase rule has a refusal and a fix;
    every rule judges at least one phase."""
    for rule in RULES.values():
        assert rule.lint is not None or rule.release is not None, rule.id
        if rule.lint is not None:
            assert rule.message or rule.id == "syntax-error", rule.id
            assert rule.lint_fix(), rule.id
        if rule.release is not None:
            message, fix = rule.release_refusal()
            assert "release phase" in message and f"allow {rule.id}" in fix


def test_the_walker_and_the_registry_name_the_same_rules() -> None:
    """Every rule the walker can report is in the registry (no second table to drift apart)."""
    sql = (
        "ALTER TABLE t DROP COLUMN a, ALTER b SET NOT NULL, ALTER c DROP DEFAULT, ALTER d TYPE text,"
        " ADD e int NOT NULL, ADD f uuid DEFAULT gen_random_uuid(), ADD FOREIGN KEY (g) REFERENCES u,"
        " ADD UNIQUE (h);\nCREATE INDEX i ON t (a);\nDROP TABLE t2;\nDROP VIEW v;\nTRUNCATE t3;\n"
        "ALTER TABLE t4 RENAME TO t5;\nALTER TABLE t6 RENAME a TO b;\nALTER VIEW v2 RENAME TO v3;\n"
        "ALTER TABLE t7 SET SCHEMA s;\nDROP SCHEMA s2;\nALTER SCHEMA s3 RENAME TO s4;\nDROP TYPE ty;\n"
        "ALTER TYPE ty2 RENAME TO ty3;\nALTER TYPE e RENAME VALUE 'a' TO 'b';\n"
        "ALTER TYPE e ADD VALUE 'c';\nALTER TABLE t8 ALTER i DROP NOT NULL;\n"
        "DO $$ BEGIN EXECUTE 'ALTER TABLE t9 DROP COLUMN x'; END $$;\n"
        "DROP TYPE ty4;\nCREATE TYPE ty4 AS ENUM ('a');\n"
    )
    found = {j.hit.rule for j in net_effect.file_hits(migration_value("1", sql).statements, set())}
    assert found <= set(RULES)
    read_not_walked = {"not-analysed", "empty-migration"}  # found by preflight from the file, not the walker
    assert found == {
        rule.id
        for rule in RULES.values()
        if (rule.release or rule.lint is Severity.WARNING) and rule.id not in read_not_walked
    }


def test_allow_in_the_header_or_above_the_statement() -> None:
    """`allow RULE` switches a rule off for the whole file or for the statement below it."""
    header = migration_value("1", "DROP TABLE t;")
    assert not allowed("drop-table", header, header.statements[0])
    above = migration_value("1", "-- release-runner: allow drop-table\nDROP TABLE t;\nDROP TABLE u;")
    first, second = above.statements
    assert allowed("drop-table", above, first) and not allowed("drop-table", above, second)
