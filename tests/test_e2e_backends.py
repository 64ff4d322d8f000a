"""Every kind of backend side by side in one real `dvc repro`: EfficientNet-Lite0, a TF-Hub
module, a TF-for-Poets graph (both small real models saved here) and precomputed features; then
the reference's normalization mistake reproduced with one `dvc exp run -S`."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from conftest import (
    commit_all,
    documented_backends,
    sh,
    tensorflow_or_skip,
    tiny_project,
    use_backends,
    write_demo_latents,
)
from deps_check import check_trace
from helpers import save_input_stats_module, save_poets_graph

tensorflow_or_skip()
pytestmark = pytest.mark.e2e

BACKENDS = ["efficientnet_lite0", "hub_stats", "poets_stats", "latents"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("backends")
    models = root / "data" / "weights"  # where local model files go (a dep of extract)
    models.mkdir(parents=True)
    save_input_stats_module(models / "hub_stats")
    save_poets_graph(models / "poets_stats.pb", size=32)

    def add_backends(params) -> None:
        write_demo_latents(params, root / "data" / "precomputed" / "latents")
        use_backends(params, dict.fromkeys(BACKENDS, "lstm"))
        # Configured like the real Inception backends, with the models saved above.
        params["backend"]["hub_stats"] = copy.deepcopy(documented_backends()["tfhub_inception_v3"])
        params["backend"]["hub_stats"].update(handle="data/weights/hub_stats")
        params["backend"]["poets_stats"] = copy.deepcopy(documented_backends()["poets_inception_v3"])
        params["backend"]["poets_stats"].update(graph="data/weights/poets_stats.pb")
        for name in ("hub_stats", "poets_stats"):
            params["backend"][name]["input"] = {"size": 32}  # the rest from the registry
        params["backend"]["latents"] = {"kind": "precomputed", "input": None,
                                        "features_dir": "data/precomputed/latents"}

    return tiny_project(root, add_backends)


def test_all_backends_run_and_are_evaluated_side_by_side(project, tmp_path):
    # Traced: each backend kind's stages read only what dvc.yaml declares.
    sh(["dvc", "repro"], project, env={"VIDMEM_TRACE_DIR": str(tmp_path / "trace")})
    assert check_trace(project, tmp_path / "trace") == {}
    for name in BACKENDS:
        metrics = json.loads((project / f"metrics/eval/{name}.json").read_text())
        assert metrics["n"] == 4 and "spearman" in metrics, name
    hub = json.loads((project / "data/features/hub_stats/info.json").read_text())
    assert hub["input_range_matches"] is True and hub["expected_input_range"] == [0, 1]
    poets = json.loads((project / "data/features/poets_stats/info.json").read_text())
    assert poets["input_range_matches"] is True and poets["feature_dim"] == 3
    latents = json.loads((project / "data/features/latents/info.json").read_text())
    assert latents["feature_dim"] == 3 and latents["kind"] == "precomputed"
    normalized = {name: json.loads((project / f"metrics/normalize/{name}.json").read_text())
                  for name in BACKENDS}
    # The verdict is the metric; the statistics behind it are the stage's report (#34).
    assert normalized["hub_stats"] == {"input_range_matches": True}
    assert normalized["efficientnet_lite0"] == {"input_range_matches": True}
    assert normalized["latents"] == {"reads_frames": False}
    report = json.loads((project / "data/reports/normalize/hub_stats.json").read_text())
    assert report["input_range_matches"] is True and set(report["channels"]) == {"R", "G", "B"}
    # decode → normalize → extract for every frame backend, in DVC's own graph.
    edges = sh(["dvc", "dag", "--dot"], project).stdout
    for name in ("efficientnet_lite0", "hub_stats", "poets_stats"):
        assert f'"decode" -> "normalize@{name}"' in edges, edges
        assert f'"normalize@{name}" -> "extract@{name}"' in edges, edges
    commit_all(project, "run")

    # The reference TF-Hub run's mistake, on purpose: feed (x-128)/128 instead of [0, 1].
    # `+`: the section has no `value` key (it comes from the registry), so DVC adds one.
    run = sh(["dvc", "exp", "run", "-S", "+backend.hub_stats.input.value=tf_inception"], project)
    # Seen at the normalize stage, before the network runs: a metric and a warning.
    assert json.loads((project / "metrics/normalize/hub_stats.json").read_text()) == \
        {"input_range_matches": False}
    normalized = json.loads((project / "data/reports/normalize/hub_stats.json").read_text())
    assert normalized["observed_input_range"][0] < -0.5  # (x-128)/128 of dark pixels
    assert normalized["expected_input_range"] == [0, 1]
    assert "WARNING: backend hub_stats would be fed values in" in run.stderr
    shown = json.dumps(json.loads(sh(["dvc", "metrics", "show", "--json"], project).stdout))
    assert "metrics/normalize/hub_stats.json" in shown
    assert '"input_range_matches": false' in shown
    hub = json.loads((project / "data/features/hub_stats/info.json").read_text())
    assert hub["input_range_matches"] is False
    assert hub["observed_input_range"][0] < -0.5  # what the 'network' really received
    shown = sh(["dvc", "exp", "show", "--csv"], project).stdout.splitlines()
    header = shown[0].split(",")
    assert "backend.hub_stats.input.value" in header
    assert "metrics/eval/hub_stats.json:spearman" in header
    assert any(",tf_inception," in line for line in shown[1:])
