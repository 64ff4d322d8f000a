"""A features-only data set under the real `dvc` CLI: labels, captions and precomputed features,
no clips (as a MediaEval user with the shipped features has). Every listed backend needs no
frames, `data.videos_dir` names a folder with no video in it, and `dvc repro` trains, evaluates
and fuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from vidmem.store.shards import ShardReader

from conftest import ran_stages, sh, tiny_project, use_backends, write_demo_latents
from deps_check import check_trace

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("features_only")

    def features_only(params) -> None:
        # One row per video, comma-separated, like MediaEval's shipped features.
        write_demo_latents(params, root / "data" / "precomputed" / "shipped", ".csv", ",")
        params["data"]["videos_dir"] = "data/precomputed"  # no video in there
        use_backends(params, {"shipped": "ridge", "captions": "ridge"})
        params["backend"]["shipped"] = {"kind": "precomputed", "input": None,
                                        "features_dir": "data/precomputed/shipped"}

    return tiny_project(root, features_only)


def test_features_only_data_set_trains_evaluates_and_fuses(project, tmp_path):
    run = sh(["dvc", "repro"], project, env={"VIDMEM_TRACE_DIR": str(tmp_path / "trace")})
    assert check_trace(project, tmp_path / "trace") == {}
    assert "a features-only run" in run.stdout
    report = json.loads((project / "data/reports/decode.json").read_text())
    assert report["features_only"] is True and report["decoded"] == []
    # Nothing was decoded: the output holds an index of no videos and no shard.
    assert [p.name for p in (project / "data/frames").iterdir()] == ["index.json"]
    assert ShardReader(project / "data/frames").stems() == []
    split = json.loads((project / "data/split.json").read_text())
    assert sum(len(v) for v in split.values()) == 16  # every labelled video
    for name in ("shipped", "captions"):
        metrics = json.loads((project / f"metrics/eval/{name}.json").read_text())
        assert metrics["n"] == 4 and metrics["head"] == "ridge"
    fusion = json.loads((project / "metrics/eval/fusion.json").read_text())
    assert fusion["fit_on"] == "val" and set(fusion["weights"]) == {"shipped", "captions"}
    assert sum(fusion["weights"].values()) == pytest.approx(1)
    assert {"spearman", "spearman_ci95_low", "spearman_ci95_high", "n"} <= set(fusion)
    table = json.loads((project / "metrics/comparison.json").read_text())
    assert [row["name"] for row in table] == ["shipped", "captions", "fusion"]


def test_predict_fuses_precomputed_and_caption_scores(project, tmp_path):
    """Precomputed rows are keyed by the feature file's stem (`video3`), caption rows by the
    captions file's names (`video3.webm`): predict once wrote no fused score at all (every row
    in .skipped.csv) and exited 0. The fused scores of the test videos are the fusion stage's."""
    import pandas as pd

    out = tmp_path / "predicted.csv"
    sh(["vidmem", "predict", "--videos", "data/precomputed/shipped", "--captions",
        "data/demo/captions.txt", "--out", str(out)], project)
    predicted = pd.read_csv(out)
    assert list(predicted.columns) == ["video", "shipped", "captions", "fusion"]
    assert len(predicted) == 16 and predicted.notna().all().all(), predicted
    assert predicted.video.str.endswith(".webm").all()  # the file names, as the labels have
    fused = pd.read_csv(project / "plots/fusion/test_predictions.csv").set_index("video")
    mine = predicted.set_index("video").loc[fused.index, "fusion"]
    # (the figure table keeps 6 significant digits)
    assert mine.to_numpy() == pytest.approx(fused.predicted.to_numpy(), abs=1e-5)
    assert not Path(f"{out}.skipped.csv").exists() or \
        pd.read_csv(f"{out}.skipped.csv").empty


def test_test_labels_reach_only_the_reported_metrics(project):
    """README: test labels are used only for the reported metrics. The same data with every test
    video's labels rigged (set to one member's test predictions: a leak would show as weight 1
    there) gives the same checkpoints byte for byte and the same fusion weights; only the test
    metrics change."""
    import pandas as pd

    def snapshot():
        return ({name: (project / f"models/{name}.pt").read_bytes()
                 for name in ("shipped", "captions")},
                json.loads((project / "metrics/eval/fusion.json").read_text()))

    sh(["dvc", "repro"], project)  # a no-op after the test above
    models_before, fusion_before = snapshot()
    split = json.loads((project / "data/split.json").read_text())
    truth = pd.read_csv(project / "data/demo/ground-truth.csv", encoding="utf-8-sig")
    shipped = pd.read_csv(project / "data/predictions/shipped.csv")
    rigged_scores = shipped[shipped.split == "test"].set_index("video").predicted
    test_rows = truth.video.isin(split["test"])
    for column in ("short-term_memorability", "long-term_memorability"):
        truth.loc[test_rows, column] = truth.loc[test_rows, "video"].map(rigged_scores).clip(0, 1)
    truth.to_csv(project / "data/rigged-ground-truth.csv", index=False)
    yaml = YAML()
    params = yaml.load(project / "params.yaml")
    original = params["data"]["ground_truth"]
    params["data"]["ground_truth"] = "data/rigged-ground-truth.csv"
    yaml.dump(params, project / "params.yaml")
    try:
        sh(["dvc", "repro"], project)
        assert json.loads((project / "data/split.json").read_text()) == split
        models_after, fusion_after = snapshot()
        assert models_after == models_before
        assert fusion_after["weights"] == fusion_before["weights"]
        assert fusion_after["val_spearman"] == fusion_before["val_spearman"]
        shipped_metrics = json.loads((project / "metrics/eval/shipped.json").read_text())
        assert shipped_metrics["spearman"] == pytest.approx(1.0)  # the rigged labels were read
    finally:
        params["data"]["ground_truth"] = original
        yaml.dump(params, project / "params.yaml")


def test_cross_validation_folds_summary_and_what_a_new_backend_reruns(project, tmp_path):
    """cv.folds=[0,1,2]: every video in exactly one test fold; each fold's TF-IDF vocabulary is
    that of its training captions alone; each fold's fusion weights are the ones its validation
    predictions give; the summary has each chain's folds, pooled CI and paired differences; and
    adding a backend leaves the existing chains' per-fold stages as they are."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from vidmem.data.groundtruth import read_captions
    from vidmem.learn.fusion import fuse_split_table, read_split_predictions

    yaml = YAML()
    params = yaml.load(project / "params.yaml")
    params["cv"]["folds"] = [0, 1, 2]
    params["cv"]["val_fraction"] = 0.35  # 16 videos: a validation part of 4, not 1
    yaml.dump(params, project / "params.yaml")
    sh(["dvc", "repro"], project, env={"VIDMEM_TRACE_DIR": str(tmp_path / "trace")})
    assert check_trace(project, tmp_path / "trace") == {}
    folds = json.loads((project / "data/cv/folds.json").read_text())["folds"]
    split = json.loads((project / "data/split.json").read_text())
    everyone = sorted(v for part in split.values() for v in part)
    assert sorted(v for fold in folds for v in fold["test"]) == everyone  # exactly once each
    captions = read_captions(project / "data/demo/captions.txt")
    for k, fold in enumerate(folds):
        assert not set(fold["test"]) & (set(fold["train"]) | set(fold["val"]))
        trained = json.loads((project / f"data/cv/chains/captions/{k}.json").read_text())
        vocabulary = TfidfVectorizer(ngram_range=(1, 2)).fit(
            [captions[v] for v in fold["train"]]).vocabulary_
        assert trained["feature_dim"] == len(vocabulary)  # no test (or val) caption's words
        table, _ = read_split_predictions({b: project / f"data/cv/chains/{b}/{k}.csv"
                                           for b in ("shipped", "captions")})
        fused = json.loads((project / f"data/cv/fused/{k}.json").read_text())
        refit = fuse_split_table(table, ["shipped", "captions"])[0]
        assert fused["weights"] == {n: round(w, 4) for n, w in refit.weights.items()}
    summary = json.loads((project / "metrics/cv.json").read_text())
    assert summary["folds"] == 3
    for chain in ("shipped", "captions", "fusion"):
        assert len(summary[chain]["folds"]) == 3 and summary[chain]["n"] == len(everyone)
    # (16 tiny captions: a fold's test captions may share no word with its training ones, and
    # all-tied predictions have no Spearman, so only the visual chain and fusion are checked.)
    for chain in ("shipped", "fusion"):
        assert None not in summary[chain]["folds"]
        assert summary[chain]["pooled_ci95_low"] <= summary[chain]["pooled_spearman"]
    assert summary["paired"]["fusion_vs_shipped"]["folds"] == 3
    assert (project / "plots/cv.png").stat().st_size > 0
    shown = sh(["dvc", "metrics", "show", "--json"], project).stdout
    assert "fusion" in shown and "pooled_spearman" in shown
    # Folds from a file (#35): the seeded folds written as `video,fold`, fold numbers reversed.
    # The test parts are the file's, the main split does not move, and the file is hashed by
    # the scan stage (DVC never opens it), so cv_split's read of it is a declared dependency.
    rows = [f"{v},{2 - k}" for k, fold in enumerate(folds) for v in fold["test"]]
    (project / "data/folds.csv").write_text("video,fold\n" + "\n".join(rows) + "\n")
    params["cv"]["folds_file"] = "data/folds.csv"
    yaml.dump(params, project / "params.yaml")
    sh(["dvc", "repro"], project, env={"VIDMEM_TRACE_DIR": str(tmp_path / "trace_folds")})
    assert check_trace(project, tmp_path / "trace_folds") == {}
    from_file = json.loads((project / "data/cv/folds.json").read_text())
    assert [f["test"] for f in from_file["folds"]] == [f["test"] for f in reversed(folds)]
    assert from_file["source"] == "data/folds.csv" and from_file["without_fold"] == []
    assert json.loads((project / "data/split.json").read_text()) == split
    del params["cv"]["folds_file"]
    yaml.dump(params, project / "params.yaml")
    sh(["dvc", "repro"], project)  # the seeded folds again
    # A second head on a backend (#35 item 4): one more chain, fused with the others on every
    # fold; it re-runs no extract and no other chain's folds.
    params["chains"]["shipped_svr"] = {"backend": "shipped", "head": "svr"}
    yaml.dump(params, project / "params.yaml")
    changed = {n.split(":")[-1] for n in json.loads(sh(["dvc", "status", "--json"], project).stdout)}
    assert {"head@shipped_svr", "cv_train@shipped_svr", "fusion", "cv_summary"} <= changed
    assert not {"extract@shipped", "concat@shipped", "head@shipped", "cv_train@shipped",
                "cv_train@captions"} & changed
    ran = ran_stages(sh(["dvc", "repro"], project).stdout)
    assert not {"extract@shipped", "train@shipped", "cv_train@shipped"} & ran
    for k in range(3):
        weights = json.loads((project / f"data/cv/fused/{k}.json").read_text())["weights"]
        assert set(weights) == {"shipped", "captions", "shipped_svr"}
    summary = json.loads((project / "metrics/cv.json").read_text())
    assert len(summary["shipped_svr"]["folds"]) == 3
    assert summary["paired"]["fusion_vs_shipped_svr"]["folds"] == 3
    assert json.loads((project / "models/fusion.json").read_text())["chains"] == \
        ["shipped", "captions", "shipped_svr"]
    # A new backend: its own chain (and the fusion and summary) are to run, no one else's.
    params["backends"] = ["shipped", "captions", "shipped_again"]
    params["backend"]["shipped_again"] = dict(params["backend"]["shipped"])
    params["chains"]["shipped_again"] = {"backend": "shipped_again", "head": "ridge"}
    yaml.dump(params, project / "params.yaml")
    changed = {n.split(":")[-1] for n in json.loads(sh(["dvc", "status", "--json"], project).stdout)}
    assert "cv_train@shipped_again" in changed
    assert not {f"cv_train@{c}" for c in ("shipped", "captions", "shipped_svr")} & changed
    params["backends"] = ["shipped", "captions"]
    del params["backend"]["shipped_again"]
    del params["chains"]["shipped_again"]
    del params["chains"]["shipped_svr"]
    params["cv"]["folds"] = []
    params["cv"]["val_fraction"] = 0.125
    yaml.dump(params, project / "params.yaml")


def test_a_frame_backend_without_videos_is_a_clear_error(project):
    yaml = YAML()
    params = yaml.load(project / "params.yaml")
    use_backends(params, {"shipped": "ridge", "efficientnet_lite0": "lstm"})
    yaml.dump(params, project / "params.yaml")
    run = sh(["dvc", "repro"], project, check=False)
    assert run.returncode != 0
    assert "backend efficientnet_lite0 needs frames" in run.stderr + run.stdout
