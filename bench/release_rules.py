"""The release-phase rules over real histories: every corpus set replayed from empty, each
migration its own release. Before a migration is applied, the release phase judges it against
the database the earlier ones built (as `migrate` would on a deploy), and the refusals are
counted by rule. A change to the rules shows here its effect on what real teams shipped.

usage: python3 bench/release_rules.py [SET ...]"""

from __future__ import annotations

import sys
from collections import Counter

import psycopg
import structlog
from common import CORPUS, LocalCluster, connect, fresh_database, table

from release_runner.core.migrations import read_directory
from release_runner.core.preflight import Prepared
from release_runner.core.rules import RULES, Severity
from release_runner.core.settings import Settings
from release_runner.run.gate import lint

SETS = sys.argv[1:] or sorted(
    path.name for path in CORPUS.glob("*") if path.is_dir() and not path.name.startswith("schema-")
)


def refusals(item: Prepared) -> list[str]:
    """The rules whose release-phase verdict refuses this migration."""
    return [
        finding.rule
        for finding in item.findings
        if finding.severity is Severity.ERROR and finding.hit and RULES[finding.rule].release
    ]


def apply(conn: psycopg.Connection[tuple[object, ...]], item: Prepared) -> bool:
    """Apply one migration as the runner would (its own transaction, or statement by statement
    where it cannot run in one); False where the server refuses it (a missing extension)."""
    try:
        if item.transactional:
            with conn.transaction():
                for statement in item.statements:
                    conn.execute(statement.text.encode())
        else:
            for statement in item.statements:
                conn.execute(statement.text.encode())
    except psycopg.Error as error:  # a set that stops is reported, not fatal
        print(f"  stops at {item.migration.label}: {type(error).__name__}")
        return False
    return True


def judge(cluster: LocalCluster, name: str) -> tuple[Counter[str], int, int]:
    """(refusals by rule, migrations judged, migrations refused) over one set."""
    by_rule: Counter[str] = Counter()
    judged = refused = 0
    with connect(fresh_database(cluster, "rules")) as conn:
        for migration in read_directory(CORPUS / name).migrations:
            [item] = lint([migration], Settings(), conn)
            rules = refusals(item)
            by_rule.update(rules)
            judged, refused = judged + 1, refused + bool(rules)
            if not apply(conn, item):
                break
    return by_rule, judged, refused


def main() -> None:
    # The events of lint() are not this benchmark's output.
    structlog.configure(processors=[structlog.testing.LogCapture()])
    results = {}
    with LocalCluster() as cluster:
        for name in SETS:
            results[name] = judge(cluster, name)
    rules = sorted({rule for by_rule, *_ in results.values() for rule in by_rule})
    rows = [
        (
            rule,
            *(str(results[name][0][rule] or "") for name in SETS),
            str(sum(r[0][rule] for r in results.values())),
        )
        for rule in rules
    ]
    rows.append(
        (
            "releases refused / judged",
            *(f"{r[2]} / {r[1]}" for r in results.values()),
            f"{sum(r[2] for r in results.values())} / {sum(r[1] for r in results.values())}",
        )
    )
    table(
        "release-phase refusals by rule, each migration of each set its own release",
        rows,
        ("rule", *SETS, "all"),
    )


if __name__ == "__main__":
    main()
