"""Run every benchmark in turn and print their tables (Markdown, ready for the README).

usage: python3 bench/run.py"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

for script, arguments in (
    ("apply.py", ["1000"]),
    ("imports.py", []),
    ("fleet.py", ["100", "1000"]),
    ("preflight.py", []),
    ("preflight_data.py", []),
    ("corpus.py", []),
    ("release_rules.py", []),
    ("verify.py", ["200", "2000", "10000"]),
    ("traffic.py", []),
):
    subprocess.run([sys.executable, str(HERE / script), *arguments], check=True)
