"""vidmem's packages in layers (#33): a package imports only from its own layer or those below, at
module level, inside functions and under TYPE_CHECKING alike, so each layer can be read, tested
and replaced without the ones above it.

    core ← store ← video ← data ← backends ← learn ← app

core: params, files, errors, registry; store: caches, shards, the per-video engine; video:
listing, decoding, the input geometry and the normalize engine; data: labels, captions, splits;
backends: feature extractors; learn: heads, training, fusion; app: predict, the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = ["core", "store", "video", "data", "backends", "learn", "app"]


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """(vidmem package, line) of every import in `path`, wherever in the file it is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "vidmem" and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


def upward_imports(src: Path) -> list[str]:
    problems = []
    for path in sorted((src / "vidmem").rglob("*.py")):
        relative = path.relative_to(src / "vidmem")
        if len(relative.parts) < 2:  # vidmem/__init__.py
            continue
        layer = LAYERS.index(relative.parts[0])
        for package, line in sorted(imported_packages(path)):
            if package in LAYERS and LAYERS.index(package) > layer:
                problems.append(f"{relative}:{line} imports vidmem.{package}")
    return problems


def test_every_package_is_in_a_layer():
    packages = {p.name for p in (REPO / "src" / "vidmem").iterdir()
                if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(LAYERS)


def test_no_package_imports_a_layer_above_it():
    assert upward_imports(REPO / "src") == []


def test_the_layer_check_finds_an_upward_import(tmp_path):
    for package in ("core", "backends"):
        (tmp_path / "vidmem" / package).mkdir(parents=True)
    (tmp_path / "vidmem" / "backends" / "x.py").write_text("from vidmem.core.params import y\n")
    (tmp_path / "vidmem" / "core" / "y.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from vidmem.backends.x import z\n")
    assert upward_imports(tmp_path) == ["core/y.py:3 imports vidmem.backends"]
