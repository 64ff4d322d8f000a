"""dvc.yaml lists every vidmem module each stage imports, so `dvc repro` never misses a code
change. (What a real run reads, params and files included, is checked by the end-to-end tests
through vidmem.core.trace.)"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from vidmem.core.trace import TrackedParams

from conftest import REPO
from deps_check import (
    _module_path,
    declared_stages,
    import_closure,
    undeclared_modules,
    undeclared_reads,
    unread_declared_params,
)

STAGES = declared_stages(REPO)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_each_stage_declares_its_import_closure(name):
    assert undeclared_modules(STAGES[name], REPO) == [], \
        f"add these to the deps of stage {name} in dvc.yaml"


def test_a_missing_module_dep_is_found():
    """The check is not vacuous: drop one module from a stage's deps and it is reported."""
    stage = STAGES["extract@efficientnet_lite0"]
    for dropped in ("src/vidmem/store", "src/vidmem/backends"):
        smaller = dataclasses.replace(stage, deps=[d for d in stage.deps if d != dropped])
        missing = undeclared_modules(smaller, REPO)
        assert missing and all(m.startswith(dropped) for m in missing), (dropped, missing)


def test_closure_follows_lazy_and_by_name_imports_but_not_type_hints():
    closure = {p.relative_to(REPO / "src").as_posix()
               for p in import_closure(REPO / "stages" / "extract.py", REPO / "src")}
    # The backend registry names modules as strings; torch_backbones imports devices inside it.
    assert {"vidmem/backends/poets.py", "vidmem/backends/tfhub.py",
            "vidmem/core/devices.py"} <= closure
    concat = {p.relative_to(REPO / "src").as_posix()
              for p in import_closure(REPO / "stages" / "concat.py", REPO / "src")}
    assert "vidmem/backends/base.py" not in concat  # features.py imports it for hints only


def test_traced_reads_outside_the_declaration_are_reported():
    stage = STAGES["evaluate@efficientnet_lite0"]
    record = {"params": ["evaluate.bootstrap_resamples", "lr", "data.ground_truth"],
              "files": ["data/split.json", "data/demo/ground-truth.csv", "data/other.csv",
                        "metrics/eval", "params.yaml"],
              "modules": ["stages/evaluate.py", "src/vidmem/learn/training.py",
                              "src/vidmem/video/frames.py"]}
    # The data set's files are declared through the scan stage's manifest (data/inputs.json).
    roots = ["data/demo/videos", "data/demo/ground-truth.csv", "data/demo/captions.txt"]
    assert undeclared_reads(stage, record, roots) == {"params": ["lr"], "files": ["data/other.csv"],
                                               "modules": ["src/vidmem/video/frames.py"]}


def test_declared_params_a_stage_never_reads_are_reported():
    """The other direction: a declared key the stage never read re-runs it for nothing."""
    stage = STAGES["evaluate@efficientnet_lite0"]
    record = {"params": ["evaluate.bootstrap_resamples", "base.seed", "data.ground_truth"],
              "files": [], "modules": []}
    assert unread_declared_params(stage, record) == ["data.on_bad_input", "data.format"]
    record["params"] += ["data.on_bad_input", "data.format"]
    assert unread_declared_params(stage, record) == []


def test_tracked_params_note_leaves_defaults_and_whole_sections():
    read: set[str] = set()
    params = TrackedParams({"decode": {"n_frames": 8}, "backend": {"b": {"input": {"size": 4}}},
                            "lr": 0.1}, read)
    assert params["decode"]["n_frames"] == 8
    assert params["decode"].get("workers", 0) == 0  # a default used is still a dependency
    assert "ffmpeg" not in params["decode"]
    assert dict(params["backend"]["b"]["input"].items()) == {"size": 4}
    assert read == {"decode.n_frames", "decode.workers", "decode.ffmpeg", "backend.b.input"}


def test_dvc_yaml_lists_packages_not_files():
    """Deps a person can read: each stage names a few of vidmem's packages, never its files."""
    text = (REPO / "dvc.yaml").read_text()
    assert len(text.splitlines()) <= 180
    for name, stage in STAGES.items():
        modules = [d for d in stage.deps if d.startswith("src/vidmem/") and d.endswith(".py")]
        assert modules in ([], ["src/vidmem/__init__.py"]), (name, modules)


def module_imports(path: Path, src: Path) -> set[Path]:
    """The vidmem modules `path` imports when it is imported (module-level statements only:
    imports inside functions run later, and hints under TYPE_CHECKING never)."""
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        for name in names:
            if name.startswith("vidmem.") and (module := _module_path(src, name)) is not None:
                found.add(module)
    return found - {path}


def test_no_module_imports_a_module_that_imports_it_back():
    src = REPO / "src"
    graph = {path: module_imports(path, src) for path in (src / "vidmem").rglob("*.py")}
    cycles = []

    def visit(path, trail):
        for nxt in graph.get(path, ()):
            if nxt in trail:
                cycles.append([p.relative_to(src).as_posix() for p in trail[trail.index(nxt):]])
            elif nxt not in done:
                visit(nxt, [*trail, nxt])
        done.add(path)

    done: set[Path] = set()
    for path in graph:
        if path not in done:
            visit(path, [path])
    # Package __init__ files import their own modules; a module reaching its package's
    # __init__ through a child import is Python's package machinery, not a cycle.
    real = [c for c in cycles if not any(p.endswith("__init__.py") for p in c)]
    assert real == []


def test_the_cycle_check_finds_a_cycle(tmp_path):
    package = tmp_path / "vidmem"
    package.mkdir()
    (package / "a.py").write_text("from vidmem.b import x\n")
    (package / "b.py").write_text("import vidmem.a\nx = 1\n")
    assert module_imports(package / "b.py", tmp_path) == {package / "a.py"}
    assert module_imports(package / "a.py", tmp_path) == {package / "b.py"}
