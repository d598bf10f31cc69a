"""Finding server binaries for scratch databases. Pure: no server is started."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from release_runner.core import redact
from release_runner.core.errors import UsageError
from release_runner.run import scratch


def _fake_bindir(directory: Path) -> Path:
    directory.mkdir(parents=True)
    for name in ("initdb", "pg_ctl"):
        (directory / name).write_text("#!/bin/sh\n")
    return directory


def test_falls_back_to_the_pgserver_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No pg_config, nothing on PATH, no Debian layout: the `server` extra's wheel is used."""
    package = tmp_path / "site" / "pgserver"
    bindir = _fake_bindir(package / "pginstall" / "bin")
    (package / "__init__.py").write_text("")
    monkeypatch.setattr(shutil, "which", lambda _: None)
    monkeypatch.setattr(scratch, "DEBIAN_BINDIRS", tmp_path / "none")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    sys.modules.pop("pgserver", None)
    assert scratch.find_bindir() == bindir


def test_newest_debian_version_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Of several Debian server versions, the newest is used."""
    for version in ("9.6", "15", "13"):
        _fake_bindir(tmp_path / version / "bin")
    monkeypatch.setattr(shutil, "which", lambda _: None)
    monkeypatch.setattr(scratch, "DEBIAN_BINDIRS", tmp_path)
    assert scratch.find_bindir() == tmp_path / "15" / "bin"


def test_no_binaries_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without server binaries the error says what to install, or to pass --scratch-url."""
    monkeypatch.setattr(shutil, "which", lambda _: None)
    monkeypatch.setattr(scratch, "DEBIAN_BINDIRS", tmp_path)
    monkeypatch.setattr(importlib.util, "find_spec", lambda _: None)
    with pytest.raises(UsageError, match="apt-get install postgresql") as raised:
        scratch.LocalCluster()
    assert "--scratch-url" in raised.value.message
    # As printed (after redaction): the example stays readable, the extra installs from a path.
    printed = redact.redact(raised.value.message)
    assert "--scratch-url 'host=HOST user=USER dbname=postgres'" in printed
    assert "pip install './release-runner[server]'" in printed
