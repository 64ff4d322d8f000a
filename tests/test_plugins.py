"""A head and a data-set layout from a module outside src/vidmem (tests/plugins/toyplugin.py),
named in params.yaml by import path, run through head, train, evaluate and `vidmem predict` as
docs/contributing.md says; and a checkpoint can never name such a module itself."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vidmem.core.errors import DataError, ParamsError
from vidmem.data.groundtruth import create_layout, list_layouts, read_ground_truth
from vidmem.learn.chain import create_head, load_scorer
from vidmem.learn.training import save_checkpoint

from conftest import sh, tiny_project, use_backends, write_demo_latents

PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture
def plugins(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))


def test_a_layout_by_import_path_reads_the_labels(tmp_path, plugins):
    (tmp_path / "labels.csv").write_text("video,short-term_memorability,other\n"
                                         "a.webm,0.9,x\nb.webm,0.5,y\nc.webm,7,z\n")
    truth = read_ground_truth(tmp_path / "labels.csv", "skip", "toyplugin:ToyLayout")
    assert truth.videos == ["a.webm", "b.webm"]  # its own reader, then vidmem's checks
    assert truth.skipped[0]["video"] == "c.webm"
    with pytest.raises(ParamsError, match=r"unknown data set layout 'nope'.*mediaeval2021"):
        create_layout("nope")
    with pytest.raises(ParamsError, match="not a vidmem Layout class"):
        create_layout("vidmem.core.params:Params")
    assert {"mediaeval2018", "videomem", "mediaeval2020", "mediaeval2021",
            "memento10k"} <= set(list_layouts())


def test_a_checkpoint_never_chooses_a_module_to_import(tmp_path, plugins):
    """#32: a head is imported only when params.yaml names it; a checkpoint naming an
    unregistered head is refused before anything is imported, and one whose head differs from
    what params.yaml says is refused too."""
    name = "toyplugin_never_imported:ToyHead"
    save_checkpoint({"head": name, "target": "short-term_memorability"}, tmp_path / "m.pt")
    with pytest.raises(DataError, match="imports no code a checkpoint names"):
        load_scorer(tmp_path / "m.pt")
    assert "toyplugin_never_imported" not in sys.modules
    head = create_head("toyplugin:ToyHead", {})
    assert head.name == "toyplugin:ToyHead"
    with pytest.raises(DataError, match="trained with head 'toyplugin_never_imported:ToyHead'"):
        load_scorer(tmp_path / "m.pt", head)


@pytest.mark.e2e
def test_toy_head_and_layout_run_through_train_evaluate_and_predict(tmp_path):
    root = tmp_path / "project"
    root.mkdir()

    def use_plugins(params) -> None:
        write_demo_latents(params, root / "data" / "precomputed" / "latents")
        params["data"].update(videos_dir="data/precomputed", captions=None,
                              format="toyplugin:ToyLayout")
        use_backends(params, {"latents": "toyplugin:ToyHead"})
        params["backend"] = {"latents": {"kind": "precomputed", "input": None,
                                         "features_dir": "data/precomputed/latents"}}

    project = tiny_project(root, use_plugins)
    env = {"PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])}
    sh(["dvc", "repro"], project, env=env)
    assert json.loads((project / "data/heads/latents.json").read_text()) == \
        {"head": "toyplugin:ToyHead", "settings": {}}
    metrics = json.loads((project / "metrics/eval/latents.json").read_text())
    assert metrics["head"] == "toyplugin:ToyHead" and metrics["n"] == 4
    summary = json.loads((project / "metrics/train/latents/metrics.json").read_text())
    assert summary["best_fit"] == 1
    out = tmp_path / "predicted.csv"
    sh(["vidmem", "predict", "--videos", "data/precomputed/latents", "--out", str(out)],
       project, env=env)
    predicted = pd.read_csv(out).set_index("video")
    assert len(predicted) == 16
    tested = pd.read_csv(project / "plots/latents/test_predictions.csv").set_index("video")
    mine = predicted.loc[[Path(v).stem for v in tested.index], "latents"].to_numpy()
    assert np.allclose(mine, tested.predicted.to_numpy(), atol=1e-5)
