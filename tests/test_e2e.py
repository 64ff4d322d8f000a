"""The real `dvc` CLI on a tiny demo config, in a fresh git repo: what a new user types."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from conftest import ran_stages, sh, status_stages, tiny_project
from deps_check import check_declared_are_read, check_trace
from test_figures import png_size

pytestmark = pytest.mark.e2e

@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return tiny_project(tmp_path_factory.mktemp("project"))


def test_repro_then_noop_then_exp_run_and_metrics_diff(project, tmp_path):
    # Traced (vidmem.core.trace): every params key, file and module a stage read must be declared.
    run = sh(["dvc", "repro"], project, env={"VIDMEM_TRACE_DIR": str(tmp_path / "trace")})
    assert check_trace(project, tmp_path / "trace") == {}
    # ... and the other way: every declared params key was read (else it re-runs for nothing).
    assert check_declared_are_read(project, tmp_path / "trace") == {}
    # The result in one line at the end of the run, without opening JSON.
    assert re.search(r"RESULT efficientnet_lite0 \(short-term_memorability\): test Spearman "
                     r"-?\d\.\d{3} \[95% CI -?\d\.\d{3}, -?\d\.\d{3}\], Pearson .*best epoch \d+",
                     run.stdout + run.stderr)
    metrics = json.loads((project / "metrics/eval/efficientnet_lite0.json").read_text())
    assert set(metrics) >= {"spearman", "pearson", "mse", "spearman_ci95_low"}
    assert metrics["random_weights"] is False and metrics["n"] == 4
    # DVCLive's per-step history: a header and one row per epoch (TINY_PARAMS: 3).
    live = project / "metrics/train/efficientnet_lite0"
    assert (live / "plots/metrics/val_spearman.tsv").read_text().splitlines()[0] == \
        "step\tval_spearman"
    assert (live / "plots/metrics/train_loss.tsv").read_text().count("\n") == 4
    sh(["git", "add", "-A"], project)
    sh(["git", "commit", "-qm", "demo run"], project)

    noop = sh(["dvc", "repro"], project)
    assert ran_stages(noop.stdout) == {"scan"}, noop.stdout  # same manifest: nothing else ran

    # Verbatim user command; 1e-5 is the value PyYAML would read as a string.
    sh(["dvc", "exp", "run", "-S", "lr=1e-5"], project)
    assert "lr: 1e-05" in (project / "params.yaml").read_text()
    diff = json.loads(sh(["dvc", "metrics", "diff", "--json"], project).stdout)
    train_diff = diff["metrics/train/efficientnet_lite0/metrics.json"]
    assert "final_train_loss" in train_diff
    assert train_diff["final_train_loss"]["old"] != train_diff["final_train_loss"]["new"]
    params_diff = json.loads(sh(["dvc", "params", "diff", "--json"], project).stdout)
    assert params_diff["params.yaml"]["lr"]["new"] == pytest.approx(1e-5)

    shown = sh(["dvc", "exp", "show", "--csv"], project).stdout
    header = shown.splitlines()[0].split(",")
    assert "lr" in header and "metrics/eval/efficientnet_lite0.json:spearman" in header
    # Each chain's head is a params column; the fusion's result a metrics column.
    assert {"chains.efficientnet_lite0.head", "chains.captions.head"} <= set(header)
    assert "metrics/eval/fusion.json:spearman" in header
    # The headline metrics lead the metrics columns (compare is first in dvc.yaml) ...
    headline = ["test_spearman.efficientnet_lite0", "test_spearman.captions",
                "test_spearman.fusion"]
    assert header[header.index("Created") + 2:][:3] == headline, header[:10]
    # ... and a --keep view (docs/results.md) shows them in full in a 200-column terminal.
    table = sh(["dvc", "exp", "show", "--no-pager", *README_EXP_SHOW], project,
               env={"COLUMNS": "200"}).stdout
    values = json.loads((project / "metrics/test_spearman.json").read_text())["test_spearman"]
    assert set(values) == {"efficientnet_lite0", "captions", "fusion"}
    for column, value in zip(headline, values.values(), strict=True):
        assert column in table and f" {value:g} " in table, (column, value, table)
    # The train stage's DVCLive summary, read the standard way: the chosen epoch, not the last.
    experiments = json.loads(sh(["dvc", "exp", "show", "--json"], project).stdout)
    workspace = experiments[0]["data"]
    assert workspace["rev"] == "workspace"
    summary = workspace["metrics"]["metrics/train/efficientnet_lite0/metrics.json"]["data"]
    assert summary["head"] == "lstm" and 1 <= summary["best_epoch"] <= summary["step"] == 3
    history = (live / "plots/metrics/val_spearman.tsv").read_text().splitlines()[1:]
    best = max(history, key=lambda row: float(row.split("\t")[1]))
    assert summary["best_val_spearman"] == pytest.approx(float(best.split("\t")[1]), abs=1e-5)

    sh(["dvc", "plots", "show", "-o", str(tmp_path / "page")], project)
    html = (tmp_path / "page" / "index.html").read_text()
    assert "plots/metrics/train_loss.tsv" in html and "plots/metrics/val_spearman.tsv" in html
    assert "predicted vs true" in html
    # Offline: no script comes from the network (the template inlines vega), and the stages'
    # figures are embedded as images.
    assert not re.search(r"<script[^>]*src=[\"']?https?:", html)
    assert "vega@5.20.2" in html and "vegaEmbed(" in html
    for figure in ("loss.png", "val_spearman.png", "test_predictions.png"):
        assert f"plots/efficientnet_lite0/{figure}" in html
        assert png_size(project / "plots" / "efficientnet_lite0" / figure) == (640, 400)
    assert png_size(project / "plots" / "comparison.png") == (640, 400)
    assert "plots/comparison.png" in html


# docs/results.md: the experiments table with only the columns that compare them.
README_EXP_SHOW = ["--drop", ".*", "--keep",
                   r"Experiment|Created|test_spearman|.*best_(epoch|candidate)|lr$|epochs$|\.head$",
                   "--sort-by", "test_spearman.fusion"]


def test_dag_lists_the_stages_in_pipeline_order(project):
    # compare comes first in dvc.yaml so that its headline metrics lead `dvc exp show`; the
    # graph below is what orders the run.
    stages = sh(["dvc", "stage", "list", "--name-only"], project).stdout.split()
    expected = ["compare", "demo_data", "scan", "geometry", "decode",
                "normalize@efficientnet_lite0", "normalize@captions",
                "extract@efficientnet_lite0", "extract@captions",
                "concat@efficientnet_lite0", "concat@captions", "split",
                "head@efficientnet_lite0", "head@captions",
                "train@efficientnet_lite0", "train@captions",
                "evaluate@efficientnet_lite0", "evaluate@captions", "fusion",
                "cv_split", "cv_train@efficientnet_lite0", "cv_train@captions",
                "cv_summary"]  # cv.folds: [] adds no cv_fusion stage
    assert stages == expected
    mermaid = sh(["dvc", "dag", "--md"], project).stdout
    names = dict(re.findall(r'(node\d+)\["([^"]+)"\]', mermaid))
    edges = {(names[a], names[b]) for a, b in re.findall(r"(node\d+)-->(node\d+)", mermaid)}
    for edge in [("demo_data", "scan"), ("scan", "decode"), ("geometry", "decode"),
                 ("scan", "split"),
                 ("decode", "normalize@efficientnet_lite0"),
                 ("normalize@efficientnet_lite0", "extract@efficientnet_lite0"),
                 ("extract@efficientnet_lite0", "concat@efficientnet_lite0"),
                 ("concat@efficientnet_lite0", "train@efficientnet_lite0"),
                 ("split", "train@efficientnet_lite0"),
                 ("head@efficientnet_lite0", "train@efficientnet_lite0"),
                 ("train@efficientnet_lite0", "evaluate@efficientnet_lite0"),
                 ("split", "extract@captions"), ("scan", "extract@captions"),
                 ("evaluate@efficientnet_lite0", "fusion"), ("evaluate@captions", "fusion"),
                 ("fusion", "compare"), ("evaluate@captions", "compare")]:
        assert edge in edges, edge


def test_a_head_or_lr_change_reruns_only_the_chains_it_touches(project):
    """#34: a head lives in `chains.<c>.head`, apart from the backend's feature settings, and each
    chain depends on its own head's settings (the head stage's file), so changing the captions
    head re-runs neither decode, normalize nor extract, and `lr` (the LSTM's) re-runs no ridge
    chain. `dvc status` names the changed head stages; `dvc repro` runs their chains only.
    Likewise decode depends on the geometry stage's file, not on the backends' sections."""
    sh(["dvc", "repro"], project)  # whatever the tests above left, a consistent workspace
    yaml = YAML()

    def change(key: str, value) -> tuple[set[str], set[str]]:
        params = yaml.load(project / "params.yaml")
        *path, last = key.split(".")
        node = params
        for part in path:
            node = node[part]
        node[last] = value
        yaml.dump(params, project / "params.yaml")
        status = status_stages(sh(["dvc", "status"], project).stdout)
        return status, ran_stages(sh(["dvc", "repro"], project).stdout)

    chain = {"train@{}", "evaluate@{}", "cv_train@{}"}  # cv_train: recording CV is off
    status, ran = change("chains.captions.head", "svr")
    # fusion, compare and cv_summary combine every chain: they declare `chains`.
    assert status == {"scan", "head@captions", "fusion", "compare", "cv_summary"}
    assert ran == {"scan", "head@captions", "fusion", "compare", "cv_summary",
                   *(s.format("captions") for s in chain)}
    assert json.loads((project / "metrics/train/captions/metrics.json").read_text())["head"] \
        == "svr"
    lr = float(yaml.load(project / "params.yaml")["lr"])
    status, ran = change("lr", lr * 3)
    assert status == {"scan", "head@efficientnet_lite0", "head@captions"}
    # head@captions runs (it declares the LSTM's keys) and writes the same file: its chain stays.
    assert ran == {"scan", "head@efficientnet_lite0", "head@captions", "fusion", "compare",
                   *(s.format("efficientnet_lite0") for s in chain)}
    # A feature setting that keeps the input geometry: decode depends on the geometry stage's
    # file, not on the backend's section, so it does not run.
    status, ran = change("backend.efficientnet_lite0.frames_per_batch", 8)
    # (cv_train declares the backend's section: a backend that fits on data is refit per fold.)
    assert status == {"scan", "geometry", "normalize@efficientnet_lite0",
                      "extract@efficientnet_lite0", "cv_train@efficientnet_lite0"}
    assert "geometry" in ran and "decode" not in ran
    sh(["git", "checkout", "params.yaml"], project)


def test_predict_scores_held_out_videos_as_evaluate_and_fusion_did(project, tmp_path):
    """The test split's videos, copied out as "new" videos with their own captions file, get
    from `vidmem predict` the scores the evaluate and fusion stages gave them."""
    import shutil

    import numpy as np
    import pandas as pd

    sh(["dvc", "repro"], project)  # whatever the tests above left, a consistent workspace
    test_videos = json.loads((project / "data/split.json").read_text())["test"]
    new = tmp_path / "new_videos"
    new.mkdir()
    for video in test_videos:
        shutil.copy2(project / "data/demo/videos" / video, new / video)
    # One more video, left out of the captions file: scored by the frame backend only.
    uncaptioned = json.loads((project / "data/split.json").read_text())["train"][0]
    shutil.copy2(project / "data/demo/videos" / uncaptioned, new / uncaptioned)
    lines = (project / "data/demo/captions.txt").read_text().splitlines()
    (tmp_path / "new_captions.txt").write_text(
        "".join(f"{line}\n" for line in lines if line.split("\t")[0] in test_videos))
    sh(["vidmem", "predict", "--videos", str(new), "--captions",
        str(tmp_path / "new_captions.txt"), "--out", str(tmp_path / "preds.csv"),
        "--no-progress"], project)
    predicted = pd.read_csv(tmp_path / "preds.csv").set_index("video")
    assert sorted(predicted.index) == sorted([*test_videos, uncaptioned])
    assert predicted.loc[uncaptioned].isna().tolist() == [False, True, True]  # no 0-vector score
    skipped = pd.read_csv(tmp_path / "preds.csv.skipped.csv")
    assert skipped.video.tolist() == [uncaptioned, uncaptioned]
    assert skipped.stage.tolist() == ["captions", "fusion"]
    assert list(predicted.columns) == ["efficientnet_lite0", "captions", "fusion"]
    for backend in ("efficientnet_lite0", "captions"):
        table = pd.read_csv(project / f"data/predictions/{backend}.csv")
        expected = table[table.split == "test"].set_index("video").predicted
        np.testing.assert_allclose(predicted.loc[expected.index, backend], expected,
                                   rtol=1e-5, atol=1e-6)
    fused = pd.read_csv(project / "plots/fusion/test_predictions.csv").set_index("video")
    np.testing.assert_allclose(predicted.loc[fused.index, "fusion"], fused.predicted,
                               rtol=1e-5, atol=1e-6)


def test_readme_commands_run_as_typed(project):
    """Every command of README.md's bash blocks, as typed, in the order given, after `dvc repro`:
    each exits 0 and prints what the README says it prints."""
    from test_readme import NOT_RUN, readme_commands

    sh(["dvc", "repro"], project)
    fused = json.loads((project / "metrics/test_spearman.json").read_text())["test_spearman"]
    stages = sh(["dvc", "stage", "list", "--name-only"], project).stdout.split()

    def experiments_listed(out: str) -> bool:
        names = sh(["dvc", "exp", "list", "--name-only"], project).stdout.split()
        return bool(names) and all(name in out for name in names)

    prints = {  # command → what the README says it shows
        "dvc metrics show": lambda out: "metrics/test_spearman.json" in out
        and f"{fused['fusion']:g}" in out,
        "dvc metrics diff": lambda out: True,  # exit 0; its content depends on the workspace
        "dvc exp run -S lr=1e-4": lambda out: float(
            YAML().load(project / "params.yaml")["lr"]) == pytest.approx(1e-4),
        # In a 200-column terminal: every experiment, and no column collapsed into `…` (plain
        # `dvc exp show` prints only `…` there: tools/exp_show_columns.py).
        "dvc exp show --only-changed": lambda out: experiments_listed(out) and "…" not in out,
        "dvc plots show": lambda out: (project / "dvc_plots/index.html").is_file(),
        "dvc dag": lambda out: all(stage.split("@")[0] in out for stage in stages),
        "vidmem predict --help": lambda out: "--videos" in out and "--out" in out,
    }
    commands = readme_commands()
    unknown = [c for c in commands if c not in prints and c not in NOT_RUN]
    assert unknown == [], f"README commands this test does not know how to check: {unknown}"
    for command in commands:
        if command in NOT_RUN:
            continue
        run = sh(["bash", "-c", command], project, check=False, env={"COLUMNS": "200"})
        out = run.stdout + run.stderr
        assert run.returncode == 0, f"README command `{command}` exited {run.returncode}:\n{out}"
        assert prints[command](out), f"README command `{command}` printed:\n{out}"
