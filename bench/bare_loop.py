"""The floor every runner is measured against, run as its own process like the runner:
connect, advisory lock, then per pending file: BEGIN, the file, history INSERT, COMMIT.

usage: python3 bench/bare_loop.py URL DIRECTORY"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import psycopg


def main(url: str, directory: Path) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(42)")
        conn.execute("CREATE TABLE IF NOT EXISTS bare_history (version text PRIMARY KEY, checksum text)")
        applied = {row[0] for row in conn.execute("SELECT version FROM bare_history")}
        for path in sorted(directory.glob("*.sql")):
            version = path.name.split("_", 1)[0]
            text = path.read_text()
            checksum = hashlib.sha256(text.encode()).hexdigest()
            if version in applied:
                continue
            conn.execute("BEGIN")
            conn.execute(text)
            conn.execute("INSERT INTO bare_history VALUES (%s, %s)", (version, checksum))
            conn.execute("COMMIT")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
