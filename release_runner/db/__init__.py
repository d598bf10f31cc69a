"""The database layer, the only code that imports psycopg. `connection` reaches the server and
holds the runner lock, `history_table` reads and writes the history, `execute` runs one
migration, `watcher` watches it from a second connection. The names callers use are here."""

from release_runner.db.connection import (
    Connection,
    DatabaseError,
    OperationalError,
    broken,
    configuration_problem,
    connect,
    create_database,
    drop_database,
    fetch_catalog,
    lock_holders,
    lock_key,
    probe,
    server_version,
    table_sizes,
    try_lock,
    with_dbname,
)
from release_runner.db.execute import IncompleteRun, MigrationError, apply
from release_runner.db.history_table import (
    RunContext,
    delete_row,
    ensure_history,
    history_exists,
    history_row,
    read_foreign_history,
    read_history,
    record_rows,
    resolve,
)
from release_runner.db.watcher import Watcher

__all__ = [
    "Connection",
    "DatabaseError",
    "IncompleteRun",
    "MigrationError",
    "OperationalError",
    "RunContext",
    "Watcher",
    "apply",
    "broken",
    "configuration_problem",
    "connect",
    "create_database",
    "delete_row",
    "drop_database",
    "ensure_history",
    "fetch_catalog",
    "history_exists",
    "history_row",
    "lock_holders",
    "lock_key",
    "probe",
    "read_foreign_history",
    "read_history",
    "record_rows",
    "resolve",
    "server_version",
    "table_sizes",
    "try_lock",
    "with_dbname",
]
