"""The terminal output, on a real terminal (a pty): what is on the screen once the run ends,
with its live line redrawn in place, colour where allowed and never a JSON line."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import secrets
import signal
import struct
import subprocess
import termios
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from release_runner.db import connection
from tests.conftest import CLI, PASSWORD, ROOT, Server, cli_env, write

_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _ctrl_c(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)


def _on_terminal(
    args: list[str],
    env: dict[str, str],
    when: Callable[[str], bool] | None = None,
    then: Callable[[subprocess.Popen[bytes]], object] = _ctrl_c,
) -> tuple[int, str, list[str]]:
    """Run the CLI with a pty as stdout; returns the exit code, the raw bytes as text and the
    lines on the screen at the end (each line as the last carriage return left it). Once
    `when` holds for what was written so far: `then(process)` (by default Ctrl-C)."""
    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # tmux's 120x40
    process = subprocess.Popen([*CLI, *args], stdout=secondary, stderr=secondary, env=env, cwd=ROOT)
    os.close(secondary)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
        if when is not None and when(b"".join(chunks).decode(errors="replace")):
            then(process)
            when = None
    os.close(main)
    code = process.wait(timeout=60)
    raw = b"".join(chunks).decode()
    screen = [_ESCAPE.sub("", line.split("\r")[-1]) for line in raw.replace("\r\n", "\n").split("\n")]
    return code, raw, [line for line in screen if line.strip()]


def test_a_person_sees_lines_a_counter_and_a_sentence(tmp_path: Path, url: str) -> None:
    """One line per migration with counter and duration, the summary in words, colour on a
    terminal; a slow migration shows its live line while it runs; no JSON."""
    write(
        tmp_path,
        {
            "0001_a.sql": "CREATE TABLE a (id int);\n",
            "0002_slow.sql": "SELECT pg_sleep(1.2);\n",
            "0003_c.sql": "CREATE TABLE c (id int);\n",
        },
    )
    code, raw, screen = _on_terminal(["migrate", "--migrations", str(tmp_path)], cli_env(url))
    assert code == 0, raw
    assert not any(line.lstrip().startswith("{") for line in screen), screen
    applied = [line for line in screen if line.startswith("✓")]
    assert [line.split()[1:3] for line in applied] == [
        ["[1/3]", f"{tmp_path}/0001_a.sql"],
        ["[2/3]", f"{tmp_path}/0002_slow.sql"],
        ["[3/3]", f"{tmp_path}/0003_c.sql"],
    ]
    assert re.search(r"0002_slow\.sql (1\.\d|2\.\d) s$", applied[1]), applied[1]
    assert screen[-1].startswith("applied 3 migrations in ")
    assert screen[-1].endswith("; invalid indexes and constraints checked (no snapshot)")  # not "verified"
    assert "\x1b[32m" in raw  # green ticks
    assert re.search(r"\[2/3\][^\n]*0002_slow\.sql[^\n]*\r", raw)  # the live line, redrawn in place


def test_no_color_and_failures_in_words(tmp_path: Path, url: str) -> None:
    """NO_COLOR and --no-color leave colour out; a failure says where, why, and what is left."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a (id int);\n", "0002_bad.sql": "SELECT 1;\nSELECT 1/0;\n"})
    code, raw, screen = _on_terminal(["migrate", "--migrations", str(tmp_path)], cli_env(url, NO_COLOR="1"))
    assert code == 1
    assert "\x1b[3" not in raw and "\x1b[2m" not in raw
    failed = next(line for line in screen if line.startswith("✗"))
    assert failed.startswith(f"✗ {tmp_path}/0002_bad.sql:2:") and "22012" in failed
    assert screen[screen.index(failed) + 1] == "    SELECT $1/$2"  # the statement, masked, under it
    assert screen[-2].startswith("partial (exit 1):")
    assert screen[-1] == "applied 1 migration before it stopped; 1 still pending"
    code, raw, _ = _on_terminal(["status", "--migrations", str(tmp_path), "--no-color"], cli_env(url))
    assert "\x1b[3" not in raw


def test_a_fleet_on_a_terminal_names_its_targets(tmp_path: Path, server: Server) -> None:
    """One line per target as it ends, the live line of targets, and a closing sentence that
    names every target that is not ok; the targets' own migrations stay in the JSON lines."""
    databases = [f"tty_{secrets.token_hex(4)}_{i}" for i in range(3)]
    for name in databases:
        connection.create_database(server.admin, name)
    try:
        targets = tmp_path / "targets"
        lines = [f"ok{i} {server.url(name)}" for i, name in enumerate(databases)]
        targets.write_text("\n".join([*lines, f"closed postgresql://runner:{PASSWORD}@127.0.0.1:1/x"]) + "\n")
        write(tmp_path / "sql", {"0001_a.sql": "CREATE TABLE a (id int);\n"})
        args = ["migrate", "--no-verify", "--migrations", str(tmp_path / "sql"), "--targets", str(targets)]
        code, raw, screen = _on_terminal([*args, "--connect-timeout", "2"], cli_env())
    finally:
        for name in databases:
            connection.drop_database(server.admin, name)
    assert code == 4 and PASSWORD not in raw
    assert sorted(line.split()[1] for line in screen if line.startswith("✓")) == ["ok0", "ok1", "ok2"]
    assert any(line.startswith("✗ closed unreachable (exit 4)") for line in screen), screen
    assert not any("0001_a.sql" in line for line in screen)
    assert screen[-1].startswith("migrate: 3 of 4 targets ok in ") and screen[-1].endswith("not ok: closed")
    assert re.search(r"\[\d/4\][^\n]*running: ", raw)  # the live line


def test_ctrl_c_ends_the_live_line_before_the_summary(tmp_path: Path, url: str) -> None:
    """Ctrl-C while a migration runs: the interrupted file gets its own line, the summary is
    the last thing on the screen, and the live line is never drawn after it."""
    write(tmp_path, {"0001_long.sql": "SELECT pg_sleep(20);\n"})
    code, raw, screen = _on_terminal(
        ["migrate", "--migrations", str(tmp_path)], cli_env(url), lambda raw: "0001_long.sql" in raw
    )
    assert code == 130, raw
    assert screen[-1].startswith("nothing applied") and screen[-2].startswith("interrupted (exit 130)"), (
        screen
    )
    assert any(line.startswith("✗") and "0001_long.sql" in line and "interrupted" in line for line in screen)
    summary_at = raw.rfind("interrupted (exit 130)")
    assert summary_at > 0 and "\r\x1b[K" not in raw[summary_at:], repr(raw[summary_at:])  # no redraw after


def test_waiting_is_one_status_line_updated_in_place(
    tmp_path: Path, url: str, admin: psycopg.Connection[Any]
) -> None:
    """A migration blocked by another session: the live line names the blocker and is redrawn
    in place each time the wait is reported (never a new line per second); once the blocker
    lets go, the ✓ line takes its place and no waiting line is left on the screen."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a (id int);\n"})
    code, raw, _ = _on_terminal(["migrate", "--migrations", str(tmp_path)], cli_env(url))
    assert code == 0, raw
    write(tmp_path, {"0002_b.sql": "ALTER TABLE a ADD COLUMN b int;\n"})
    with psycopg.connect(url) as blocker:
        blocker.execute("LOCK TABLE a IN ACCESS EXCLUSIVE MODE")
        pid = blocker.info.backend_pid
        waiting = f"waiting for a lock held by pid {pid}"
        # Let go once the status was drawn twice (the wait is reported about every second).
        code, raw, screen = _on_terminal(
            ["migrate", "--migrations", str(tmp_path), "--lock-timeout", "60", "--retries", "1"],
            cli_env(url),
            lambda raw: raw.count(waiting) >= 2,
            lambda _: blocker.rollback(),
        )
    assert code == 0, raw
    drawn = [match.start() for match in re.finditer(re.escape(waiting), raw)]
    assert len(drawn) >= 2, raw
    for at in drawn:  # each time on the live line: wiped and redrawn, no new line since
        assert "\n" not in raw[raw.rfind("\r\x1b[K", 0, at) : at], repr(raw)
    assert not [line for line in screen if "waiting for" in line], screen
    assert [line.split()[1:3] for line in screen if line.startswith("✓")] == [
        ["[1/1]", f"{tmp_path}/0002_b.sql"]
    ]


def test_plan_shows_each_statement_with_its_locks_and_each_finding_once(tmp_path: Path, url: str) -> None:
    """plan on a terminal: each pending statement (masked) with the locks it takes and its
    findings under it; no finding printed twice, and the refusal names no finding again."""
    write(tmp_path, {"0001_a.sql": "CREATE TABLE a (id int, secret text);\n"})
    code, raw, _ = _on_terminal(["migrate", "--migrations", str(tmp_path)], cli_env(url))
    assert code == 0, raw
    write(tmp_path, {"0002_b.sql": "ALTER TABLE a DROP COLUMN secret;\nUPDATE a SET id = 42;\n"})
    code, raw, screen = _on_terminal(["plan", "--migrations", str(tmp_path)], cli_env(url))
    assert code == 5, raw
    assert any(
        line.startswith("  1: ALTER TABLE a DROP COLUMN secret  [locks a (ACCESS EXCLUSIVE)")
        for line in screen
    )
    assert "  2: UPDATE a SET id = $1  [locks a (ROW EXCLUSIVE)]" in screen  # the constant masked
    assert [line.strip().split(":")[0] for line in screen if "error drop-column" in line] == [
        "error drop-column on a.secret"
    ]
    assert (
        screen[-2]
        == "refused (exit 5): migrate would refuse: the findings are listed with the pending migrations"
    )
