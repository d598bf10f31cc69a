"""What ships: the Dockerfile lints clean and its install step gives a working
`release-runner` in a clean virtual environment; the package stays mypy --strict and ruff
clean; `--help` does not import psycopg."""

from __future__ import annotations

import os
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
        "import sys, click.testing; from release_runner.cli.main import cli;"
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


def test_pipx_install_from_a_wheel_as_the_readme_says(tmp_path: Path) -> None:
    """The README's pipx line, run as written against a copy of the checkout: `release-runner`
    lands on the PATH pipx manages, and runs."""
    pipx = _tool("pipx")
    readme = (ROOT / "README.md").read_text()
    line = re.search(r"^pip wheel (.*) && pipx install (\S+)", readme, re.M)
    assert line, "the README's pipx line moved; update this test"
    checkout = tmp_path / "release-runner"
    checkout.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, checkout / name)
    shutil.copytree(
        ROOT / "release_runner", checkout / "release_runner", ignore=shutil.ignore_patterns("__pycache__")
    )
    env = {**os.environ, "PIPX_HOME": str(tmp_path / "pipx"), "PIPX_BIN_DIR": str(tmp_path / "bin")}
    shell = f'pip() {{ {sys.executable} -m pip "$@"; }}; pipx() {{ {pipx} "$@"; }}; {line.group(0)}'
    installed = subprocess.run(
        ["bash", "-c", shell], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    version = subprocess.run(
        [str(tmp_path / "bin" / "release-runner"), "--version"], capture_output=True, text=True
    )
    assert "release-runner, version" in version.stdout, version.stderr


def test_shell_completion_as_the_readme_says() -> None:
    """The completion script the README evals exists, and it completes a command name."""
    script = shutil.which("release-runner") or str(Path(sys.executable).parent / "release-runner")
    source = subprocess.run(
        [script],
        env={**os.environ, "_RELEASE_RUNNER_COMPLETE": "bash_source"},
        capture_output=True,
        text=True,
    )
    assert "complete -o nosort -F _release_runner_completion release-runner" in source.stdout
    completed = subprocess.run(
        [script],
        env={
            **os.environ,
            "_RELEASE_RUNNER_COMPLETE": "bash_complete",
            "COMP_WORDS": "release-runner mig",
            "COMP_CWORD": "1",
        },
        capture_output=True,
        text=True,
    )
    assert "plain,migrate" in completed.stdout.splitlines()
