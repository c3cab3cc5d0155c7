"""How the CLI names itself in the commands it prints (`browse:` lines): the way it was run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from coe_sweep import console


def _script(tmp_path: Path) -> Path:
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "coe-sweep"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    return script


def test_program_is_the_venv_path_when_not_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = _script(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script), "launch"])
    monkeypatch.setenv("PATH", "/usr/bin")
    assert console.program() == os.path.join(".venv", "bin", "coe-sweep")
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    assert console.program() == str(script)  # outside the project: the absolute path


def test_program_is_the_bare_name_when_the_shell_finds_this_script(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    script = _script(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script), "launch"])
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}/usr/bin")
    assert console.program() == "coe-sweep"
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "coe-sweep").write_text("#!/bin/sh\n")
    (other / "coe-sweep").chmod(0o755)
    monkeypatch.setenv("PATH", f"{other}{os.pathsep}{script.parent}")  # another coe-sweep comes first
    assert console.program() != "coe-sweep"


def test_program_of_python_dash_m_names_the_interpreter(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "cli.py")])
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python3"))  # no coe-sweep script beside it
    assert console.program() == f"{tmp_path / 'python3'} -m coe_sweep.cli"
