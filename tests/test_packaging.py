"""What ships: the Dockerfile lints clean and its install step gives a working
`release-runner` in a clean virtual environment; the package stays mypy --strict and ruff
clean; `--help` does not import psycopg."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT, needs_server_binaries


def _tool(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(found).exists():
        pytest.skip(f"{name} is not installed (pip install -e '.[test]' installs it)")
    return found


def test_dockerfile_lints_clean() -> None:
    """hadolint finds nothing in the Dockerfile."""
    result = subprocess.run([_tool("hadolint"), "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_server_binaries
def test_dockerfile_install_step_gives_a_working_cli(tmp_path: Path) -> None:
    """Run the Dockerfile's own pip command in a fresh venv, from a copy of what it COPYs."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    install = re.search(r"/opt/release-runner/bin/pip (install [^\n]+)", dockerfile)
    assert install, "the Dockerfile's install step moved; update this test"
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(
        ROOT / "release_runner", tmp_path / "release_runner", ignore=shutil.ignore_patterns("__pycache__")
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), *install.group(1).split(), "-q"], cwd=tmp_path, check=True, timeout=300
    )
    version = subprocess.run(
        [str(venv / "bin" / "release-runner"), "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0 and "release-runner, version" in version.stdout
    check = subprocess.run(
        [str(venv / "bin" / "release-runner"), "check", "--migrations", str(ROOT / "sql")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]


def test_fly_toml_budget_is_below_the_release_timeout() -> None:
    """The example fly.toml stops the runner before Fly stops waiting."""
    config = tomllib.loads((ROOT / "fly.toml").read_text())
    assert config["deploy"]["release_command"] == "release-runner migrate"
    assert config["kill_signal"] == "SIGTERM"  # the app's graceful shutdown; the runner handles it too
    budget = config["env"]["RELEASE_RUNNER_TIME_BUDGET"]
    timeout = config["deploy"]["release_command_timeout"]
    assert int(budget.rstrip("m")) < int(timeout.rstrip("m"))


def test_help_does_not_import_psycopg_or_pglast() -> None:
    """--help loads neither the driver nor the parser."""
    code = (
        "import sys, click.testing; from release_runner.cli import cli;"
        "click.testing.CliRunner().invoke(cli, ['migrate', '--help']);"
        "print('psycopg' in sys.modules, 'pglast' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "False False"


def test_mypy_strict_and_ruff_clean() -> None:
    """The package passes mypy --strict and ruff."""
    mypy = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert mypy.returncode == 0, mypy.stdout
    ruff = subprocess.run([_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["strict"] is True
