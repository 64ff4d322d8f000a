"""A features-only `dvc repro` (precomputed features + caption TF-IDF, fusion) on small file sets
in the Memento10k and MediaEval 2021 layouts, with their official splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import sh, tiny_project, use_backends

pytestmark = pytest.mark.e2e


def write_memento(root: Path, scores: dict[str, float]) -> None:
    names = sorted(scores)
    root.mkdir(parents=True)
    parts = {"train": names[:16], "val": names[16:], "test": ["withheld0.mp4", "withheld1.mp4"]}
    for part, videos in parts.items():
        (root / f"memento_{part}_data.json").write_text(json.dumps(
            [{"filename": v, "alpha": -0.001, **({"mem_score": scores[v]} if v in scores else {})}
             for v in videos]))
    (root / "memento_captions.json").write_text(json.dumps(
        {Path(v).stem: [f"{'vivid crash' if scores[v] > 0.7 else 'calm field'} clip",
                        f"another view of {Path(v).stem}"] for v in names}))


def write_me2021(root: Path, scores: dict[str, float]) -> None:
    """The MediaEval 2021 release as published: `training_set/`, `dev_set/`, `test_set/` (the
    last with descriptions only), scores with `video_url`, long descriptions with a BOM and
    CRLF line ends (tests/data/mediaeval2021/README.md)."""
    names = sorted(scores)
    for folder, part, videos in (("training_set", "train", names[:16]),
                                 ("dev_set", "dev", names[16:])):
        (root / folder).mkdir(parents=True)
        (root / folder / f"{part}_scores.csv").write_text(
            "video_id,video_url,annotations_short_term,annotations_long_term,"
            "scores_raw_short_term,scores_raw_long_term,scores_normalized_short_term,"
            "decay_alpha\n" + "".join(
                f"{int(v[:5])},https://example.org/{v},40,12,{scores[v]},{scores[v] * 0.9:.4f},"
                f"{scores[v]},-0.001\n" for v in videos))
        (root / folder / f"{part}_text_descriptions.csv").write_bytes((
            "\ufeffvideo_id,video_url,description\r\n" + "".join(
                f"{int(v[:5])},https://example.org/{v},"
                f"{'vivid crash' if scores[v] > 0.7 else 'calm field'}\r\n"
                f"{int(v[:5])},https://example.org/{v},a second description\r\n"
                for v in videos)).encode())
    (root / "test_set").mkdir()
    (root / "test_set" / "test_text_descriptions.csv").write_text(
        "video_id,video_url,description\n90,https://example.org/90.mp4,a test clip\n"
        "91,https://example.org/91.mp4,another test clip\n")


@pytest.mark.parametrize("layout", ["memento10k", "mediaeval2021"])
def test_features_only_repro_on_each_layout(tmp_path, layout):
    rng = np.random.default_rng(0)
    names = ([f"clip{i:02d}.mp4" for i in range(24)] if layout == "memento10k"
             else [f"{i:05d}.mp4" for i in range(1, 25)])
    scores = {v: round(float(s), 4) for v, s in zip(names, rng.uniform(0.4, 0.95, 24),
                                                     strict=True)}

    def edit(params) -> None:
        params["data"].update({
            "format": layout, "videos_dir": "data/precomputed",
            "ground_truth": f"data/{layout}",
            "captions": (f"data/{layout}/memento_captions.json" if layout == "memento10k"
                         else f"data/{layout}")})
        params["split"].update({"source": "official", "val": 0.25})
        use_backends(params, {"shipped": "ridge", "captions": "ridge"})
        params["backend"]["shipped"] = {"kind": "precomputed", "input": None,
                                        "features_dir": "data/precomputed/shipped"}

    project = tiny_project(tmp_path / "project", edit)
    # The data set copied in after the clone, as a user does: untracked until `dvc add`.
    (write_memento if layout == "memento10k" else write_me2021)(project / "data" / layout, scores)
    shipped = project / "data" / "precomputed" / "shipped"
    shipped.mkdir(parents=True)
    for v, score in scores.items():  # a feature that carries the score, plus noise
        (shipped / f"{Path(v).stem}.txt").write_text(
            f"{score + rng.normal(0, 0.05):.5f} {rng.normal():.5f}\n")
    run = sh(["dvc", "repro"], project)
    # data.* reads none of the demo's files: no demo clip is encoded for nothing.
    assert "writing an empty demo" in run.stdout
    assert list((project / "data/demo/videos").iterdir()) == []
    split = json.loads((project / "data/split.json").read_text())
    official_test = sorted(scores)[16:]
    assert split["test"] == official_test and len(split["val"]) == 4
    assert not {"withheld0.mp4", "withheld1.mp4", "00090.mp4"} & {v for p in split.values()
                                                                    for v in p}
    report = json.loads((project / "data/reports/dataset.json").read_text())
    assert report["parts"]["train"] == {"labelled": 16, "used": 16, "captioned": 16}
    assert report["parts"]["test"]["used"] == 8 and report["parts"]["withheld"] == {"videos": 2}
    fusion = json.loads((project / "metrics/eval/fusion.json").read_text())
    assert fusion["n"] == len(official_test) and set(fusion["weights"]) == {"shipped", "captions"}
    shipped = json.loads((project / "metrics/eval/shipped.json").read_text())
    assert shipped["spearman"] > 0.5  # the feature carries the score: the labels were read right
    if layout == "mediaeval2021":
        # README: data copied into the repo is tracked with `dvc add`, so experiments that run
        # in a copy of the repo (`--temp`, `--queue`) find it.
        sh(["dvc", "add", f"data/{layout}", "data/precomputed/shipped"], project)
        sh(["git", "add", "-A"], project)
        sh(["git", "commit", "-qm", "track the data set"], project)
        sh(["dvc", "exp", "run", "--temp", "-S", "split.val=0.3"], project)
        shown = json.loads(sh(["dvc", "exp", "show", "--json"], project).stdout)
        runs = [rev for entry in shown for exp in entry.get("experiments") or []
                for rev in exp["revs"]]
        assert [r["data"]["params"]["params.yaml"]["data"]["split"]["val"] for r in runs
                if r["error"] is None] == [0.3]
    if layout == "memento10k":
        from ruamel.yaml import YAML

        # Folds from the data set's own parts (#35): fold 0 tests on the official test part,
        # fold 1 on the official training part; the main split does not move.
        yaml = YAML()
        params = yaml.load(project / "params.yaml")
        params["cv"].update({"folds": [0, 1], "source": "official", "val_fraction": 0.35})
        yaml.dump(params, project / "params.yaml")
        sh(["dvc", "repro"], project)
        folds = json.loads((project / "data/cv/folds.json").read_text())
        assert folds["source"] == "official"
        assert [f["test"] for f in folds["folds"]] == [official_test, sorted(scores)[:16]]
        assert json.loads((project / "data/split.json").read_text()) == split
        assert len(json.loads((project / "metrics/cv.json").read_text())["fusion"]["folds"]) == 2
        # No long-term scores: a clear error naming the data set.
        params["cv"] = {"folds": []}
        params["target"] = "long-term_memorability"
        yaml.dump(params, project / "params.yaml")
        run = sh(["dvc", "repro"], project, check=False)
        assert run.returncode != 0
        assert "data set memento10k has no long-term_memorability scores" in run.stdout + run.stderr
