"""k-fold splits and the summary that compares chains over the same folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from vidmem.core.errors import DataError, ParamsError
from vidmem.learn.crossval import (
    kfold_splits,
    official_fold_parts,
    paired_difference,
    read_fold_file,
    summarize_chain,
)

VIDEOS = [f"video{i}.webm" for i in range(1, 104)]


def test_every_video_is_in_exactly_one_test_fold_and_parts_are_disjoint():
    folds = kfold_splits(VIDEOS, 5, seed=7)
    assert len(folds) == 5
    tested = [v for fold in folds for v in fold["test"]]
    assert sorted(tested) == sorted(VIDEOS)  # each exactly once
    for fold in folds:
        parts = [set(fold[p]) for p in ("train", "val", "test")]
        assert parts[0].isdisjoint(parts[1]) and parts[0].isdisjoint(parts[2])
        assert parts[1].isdisjoint(parts[2])
        assert set().union(*parts) == set(VIDEOS)
        assert len(fold["test"]) in (20, 21)
        assert len(fold["val"]) == round(0.125 * (103 - len(fold["test"])))


def test_folds_depend_on_the_set_of_names_and_the_seed_only():
    assert kfold_splits(VIDEOS[::-1], 4, 3) == kfold_splits(VIDEOS, 4, 3)
    assert kfold_splits(VIDEOS, 4, 3) != kfold_splits(VIDEOS, 4, 4)


@pytest.mark.parametrize("folds, error, message", [
    (1, ParamsError, "at least 2"), (2.5, ParamsError, "integer"),
    (50, DataError, "too few for 50 folds")])
def test_bad_fold_counts_are_explained(folds, error, message):
    with pytest.raises(error, match=message):
        kfold_splits(VIDEOS, folds, 0)


def test_chain_summary_matches_independent_numbers():
    rng = np.random.default_rng(0)
    true = [rng.uniform(size=40) for _ in range(4)]
    predicted = [t + rng.normal(0, 0.3, 40) for t in true]
    summary = summarize_chain(true, predicted, bootstrap_resamples=200)
    per_fold = [stats.spearmanr(t, p).statistic for t, p in zip(true, predicted, strict=True)]
    np.testing.assert_allclose(summary["folds"], per_fold, atol=1e-6)
    assert summary["mean"] == pytest.approx(np.mean(per_fold), abs=1e-6)
    assert summary["sd"] == pytest.approx(np.std(per_fold, ddof=1), abs=1e-6)
    pooled = stats.spearmanr(np.concatenate(true), np.concatenate(predicted)).statistic
    assert summary["pooled_spearman"] == pytest.approx(pooled)
    assert summary["pooled_ci95_low"] < pooled < summary["pooled_ci95_high"]
    assert summary["n"] == 160


def test_paired_difference_counts_wins_fold_by_fold():
    result = paired_difference([0.50, 0.48, 0.47, 0.52], [0.45, 0.49, 0.44, 0.50])
    np.testing.assert_allclose(result["differences"], [0.05, -0.01, 0.03, 0.02], atol=1e-9)
    assert result["wins"] == 3 and result["folds"] == 4
    assert result["mean"] == pytest.approx(0.0225)
    with pytest.raises(DataError, match="same folds"):
        paired_difference([0.1], [0.1, 0.2])


def test_per_fold_values_are_also_scalars_that_dvc_metrics_show_can_display():
    """`dvc metrics show` leaves lists out of its table: each per-fold value is also a key."""
    import numpy as np

    from vidmem.learn.crossval import paired_difference, summarize_chain

    rng = np.random.default_rng(0)
    true = [rng.uniform(size=20) for _ in range(3)]
    summary = summarize_chain(true, [t + rng.normal(0, 0.1, 20) for t in true], 20, 0)
    assert [summary[f"fold_{k}"] for k in range(3)] == summary["folds"]
    paired = paired_difference([0.5, 0.4, 0.3], [0.1, 0.2, 0.4])
    assert [paired[f"difference_{k}"] for k in range(3)] == paired["differences"] \
        == pytest.approx([0.4, 0.2, -0.1])


def test_folds_read_from_a_file_reproduce_the_file(tmp_path):
    """#35: a published `video,fold` CSV (by file name or stem, any row order) gives exactly its
    test parts; validation is carved from each fold's rest as for seeded folds; a video the
    file misses is left out under skip and named under fail; bad files name what is wrong."""
    videos = [f"video{i}.webm" for i in range(1, 13)]
    given = {v: (i * 7) % 3 for i, v in enumerate(videos)}
    rows = [f"{Path(v).stem if i % 2 else v},{k}" for i, (v, k) in enumerate(given.items())]
    (tmp_path / "folds.csv").write_text("video,fold\n" + "\n".join(reversed(rows)) + "\n")
    parts, missing = read_fold_file(tmp_path / "folds.csv", videos, 3)
    assert missing == []
    folds = kfold_splits(videos, 3, seed=1, test_parts=parts)
    for k, fold in enumerate(folds):
        assert fold["test"] == sorted(v for v, f in given.items() if f == k)
        assert not set(fold["test"]) & (set(fold["train"]) | set(fold["val"]))
        assert sorted(fold["train"] + fold["val"] + fold["test"]) == sorted(videos)
    # One video more than the file knows: left out (skip), or an error naming it (fail).
    parts, missing = read_fold_file(tmp_path / "folds.csv", [*videos, "video99.webm"], 3)
    assert missing == ["video99.webm"]
    with pytest.raises(DataError, match="no fold to 1 video.*video99.webm"):
        read_fold_file(tmp_path / "folds.csv", [*videos, "video99.webm"], 3, "fail")
    with pytest.raises(DataError, match=r"not one of 0..1"):
        read_fold_file(tmp_path / "folds.csv", videos, 2)  # the file numbers three folds
    (tmp_path / "bad.csv").write_text("clip,split\nvideo1.webm,0\n")
    with pytest.raises(DataError, match="expected the columns video,fold"):
        read_fold_file(tmp_path / "bad.csv", videos, 3)
    (tmp_path / "twice.csv").write_text("video,fold\nvideo1.webm,0\nvideo1.webm,1\n")
    with pytest.raises(DataError, match="more than one fold"):
        read_fold_file(tmp_path / "twice.csv", videos, 3)


def test_the_cv_seed_moves_the_folds_not_the_main_split():
    from vidmem.core.params import CVConfig, SplitConfig

    raw = {"base": {"seed": 42}, "cv": {"folds": [0, 1, 2]},
           "split": {"train": 0.75, "val": 0.125, "test": 0.125}}
    assert CVConfig.from_params(raw).seed == 42
    moved = {**raw, "cv": {"folds": [0, 1, 2], "seed": 7}}
    assert CVConfig.from_params(moved).seed == 7
    assert SplitConfig.from_params(moved) == SplitConfig.from_params(raw)


def test_official_parts_make_two_folds_and_anything_else_is_a_clear_error():
    official = {"train": ["t2", "t1", "t3", "t4"], "test": ["s2", "s1", "s3"]}
    parts = official_fold_parts(official, "memento10k", 2)
    assert parts == [["s1", "s2", "s3"], ["t1", "t2", "t3", "t4"]]  # fold 0 tests on "test"
    folds = kfold_splits([v for part in parts for v in part], 2, 0, 0.3, parts)
    assert [sorted(f["test"]) for f in folds] == parts
    with pytest.raises(ParamsError, match="mediaeval2018 defines no official parts"):
        official_fold_parts(None, "mediaeval2018", 2)
    with pytest.raises(ParamsError, match=r"gives 2 folds .* cv.folds lists 5"):
        official_fold_parts(official, "memento10k", 5)
