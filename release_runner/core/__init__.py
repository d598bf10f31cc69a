"""The core: what release-runner knows, with no database, terminal or logging library in it.

Pure (no psycopg, click or structlog; no I/O beyond reading migration and snapshot files), so
every rule can be tested in milliseconds: the model (migrations, statements, history rows and
their enums), the directory readers, the parser and one set of parse-tree readers, one rule
registry, plan, adoption, deploy phases, outcomes, the snapshot and the diff. Every other wing
imports from here; this wing imports from none of them.
"""
