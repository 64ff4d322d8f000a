"""The installed `vidmem` command: each subcommand answers --help, an unknown one is refused."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def vidmem(*args: str) -> subprocess.CompletedProcess:
    executable = shutil.which("vidmem")
    assert executable, "`vidmem` is not on PATH: `pip install -r requirements.txt` installs it"
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=120)


def test_vidmem_help_lists_the_commands():
    result = vidmem("--help")
    assert result.returncode == 0
    assert "predict" in result.stdout and "gpu-stages" in result.stdout


@pytest.mark.parametrize("command, option", [("predict", "--videos"), ("gpu-stages", "--run")])
def test_each_command_has_its_own_help(command, option):
    result = vidmem(command, "--help")
    assert result.returncode == 0
    assert f"usage: vidmem {command}" in result.stdout and option in result.stdout


def test_unknown_command_is_refused_with_the_choices():
    result = vidmem("train-everything")
    assert result.returncode == 2
    assert "invalid choice: 'train-everything'" in result.stderr
