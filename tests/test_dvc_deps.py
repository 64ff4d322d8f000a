"""dvc.yaml lists every vidmem module each stage imports, so `dvc repro` never misses a code
change. (What a real run reads, params and files included, is checked by the end-to-end tests
through vidmem.trace.)"""

from __future__ import annotations

import dataclasses

import pytest

from vidmem.trace import TrackedParams

from conftest import REPO
from deps_check import declared_stages, import_closure, undeclared_modules, undeclared_reads

STAGES = declared_stages(REPO)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_each_stage_declares_its_import_closure(name):
    assert undeclared_modules(STAGES[name], REPO) == [], \
        f"add these to the deps of stage {name} in dvc.yaml"


def test_a_missing_module_dep_is_found():
    """The check is not vacuous: drop one module from a stage's deps and it is reported."""
    stage = STAGES["extract@efficientnet_lite0"]
    for dropped in ("src/vidmem/features.py", "src/vidmem/backends"):
        smaller = dataclasses.replace(stage, deps=[d for d in stage.deps if d != dropped])
        missing = undeclared_modules(smaller, REPO)
        assert missing and all(m.startswith(dropped) for m in missing), (dropped, missing)


def test_closure_follows_lazy_and_by_name_imports_but_not_type_hints():
    closure = {p.relative_to(REPO / "src").as_posix()
               for p in import_closure(REPO / "stages" / "extract.py", REPO / "src")}
    # BUILTIN_KINDS names modules as strings; torch_backbones imports devices inside it.
    assert {"vidmem/backends/poets.py", "vidmem/backends/tfhub.py",
            "vidmem/devices.py"} <= closure
    concat = {p.relative_to(REPO / "src").as_posix()
              for p in import_closure(REPO / "stages" / "concat.py", REPO / "src")}
    assert "vidmem/backends/base.py" not in concat  # features.py imports it for hints only


def test_traced_reads_outside_the_declaration_are_reported():
    stage = STAGES["evaluate@efficientnet_lite0"]
    record = {"params": ["evaluate.bootstrap_resamples", "lr", "data.ground_truth"],
              "files": ["data/split.json", "data/demo/ground-truth.csv", "data/other.csv",
                        "metrics/eval", "params.yaml"],
              "modules": ["stages/evaluate.py", "src/vidmem/training.py", "src/vidmem/demo.py"]}
    assert undeclared_reads(stage, record) == {"params": ["lr"], "files": ["data/other.csv"],
                                               "modules": ["src/vidmem/demo.py"]}


def test_tracked_params_note_leaves_defaults_and_whole_sections():
    read: set[str] = set()
    params = TrackedParams({"decode": {"n_frames": 8}, "backend": {"b": {"input": {"size": 4}}},
                            "lr": 0.1}, read)
    assert params["decode"]["n_frames"] == 8
    assert params["decode"].get("workers", 0) == 0  # a default used is still a dependency
    assert "ffmpeg" not in params["decode"]
    assert dict(params["backend"]["b"]["input"].items()) == {"size": 4}
    assert read == {"decode.n_frames", "decode.workers", "decode.ffmpeg", "backend.b.input"}
