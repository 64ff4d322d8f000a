"""The locked install: requirements.txt pins every package (compiled from requirements.in), and
the environment running the tests is exactly that lock, so a green run says what it ran on."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def _requirements(path: Path) -> list[Requirement]:
    lines = [re.sub(r"\s*#.*$", "", line).strip() for line in path.read_text().splitlines()]
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for requirement in _requirements(path):
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", (
            f"{path.name}: {requirement} is not pinned to one version")
        pins[canonicalize_name(requirement.name)] = specifiers[0].version
    return pins


def test_every_locked_package_is_pinned_and_the_lock_is_complete():
    pins = _pins(REPO / "requirements.txt")
    assert len(pins) > 100  # the transitive packages too, not only the direct ones
    for requirement in _requirements(REPO / "requirements.in"):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"requirements.in's {name} is missing from the lock: re-compile it"
        assert requirement.specifier.contains(pins[name]), (
            f"the lock pins {name}=={pins[name]}, requirements.in asks {requirement.specifier}")


def test_installed_versions_equal_the_lock():
    wrong = {}
    for name, pinned in _pins(REPO / "requirements.txt").items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != pinned:
            wrong[name] = (pinned, installed)
    assert wrong == {}, "installed (lock, here) differ; run `pip install -r requirements.txt`"
