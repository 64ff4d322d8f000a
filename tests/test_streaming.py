"""concat writes video by video and train/evaluate read batches from disk: the numbers are the
same as with the whole array in memory, and an interrupted concat leaves nothing that looks
complete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from vidmem.core.params import TrainConfig
from vidmem.learn import training
from vidmem.learn.training import feature_stats, predict_scores, train_model
from vidmem.store.concatenated import load_concat
from vidmem.store.features import concat_features
from vidmem.store.shards import ShardReader, write_arrays

from conftest import REPO


def write_features(folder, n: int, frames: int = 4, dim: int = 6, seed: int = 0) -> list[str]:
    """An extract output (shards) of `n` videos; returns their file names."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # Large offset and small spread: the case where a naive float32 variance loses digits.
    write_arrays(folder, ((f"v{i:05d}", (1000 + rng.normal(0, 0.01, (frames, dim))
                                         ).astype(np.float32)) for i in range(n)))
    return [f"v{i:05d}.webm" for i in range(n)]


@pytest.mark.parametrize("batch", [1, 3, 7, 1024])
def test_streamed_statistics_equal_the_whole_array_ones(tmp_path, monkeypatch, batch):
    names = write_features(tmp_path / "features", 20)
    concat_features(tmp_path / "features", names, tmp_path / "concat")
    features, _ = load_concat(tmp_path / "concat")
    rows = np.array([0, 3, 4, 9, 10, 11, 17, 19])
    monkeypatch.setattr(training, "STATS_BATCH", batch)
    mean, std = feature_stats(features, rows)
    whole = np.asarray(features)[rows].astype(np.float64).reshape(-1, 6)
    np.testing.assert_allclose(mean, whole.mean(axis=0).astype(np.float32), rtol=1e-7)
    np.testing.assert_allclose(std, (whole.std(axis=0) + 1e-6).astype(np.float32), rtol=1e-5)
    assert mean.dtype == std.dtype == np.float32


def config(**changes) -> TrainConfig:
    base = TrainConfig(lr=1e-2, epochs=3, batch_size=16, target="short-term_memorability",
                       hidden_size=8, num_layers=2, dropout=0.0, seed=0, device="cpu",
                       shuffle_train_labels=False)
    return TrainConfig(**{**base.__dict__, **changes})


def test_training_from_disk_equals_training_in_memory(tmp_path):
    """Same rows, same standardization, same order: bit-identical history, weights, scores."""
    names = write_features(tmp_path / "features", 60)
    concat_features(tmp_path / "features", names, tmp_path / "concat")
    on_disk, _ = load_concat(tmp_path / "concat")
    in_memory = np.asarray(on_disk)
    targets = in_memory[:, :, 0].mean(axis=1) - 999.5
    train, val, test = np.arange(0, 40), np.arange(40, 50), np.arange(50, 60)
    runs = [train_model(f, targets, train, val, config(), progress=False)
            for f in (in_memory, on_disk)]
    assert runs[0].history.equals(runs[1].history)
    for key, value in runs[0].checkpoint["state_dict"].items():
        assert torch.equal(value, runs[1].checkpoint["state_dict"][key]), key
    scores = [predict_scores(r.model, r.checkpoint, f, test) for r, f in
              zip(runs, (in_memory, on_disk), strict=True)]
    np.testing.assert_array_equal(scores[0], scores[1])
    np.testing.assert_array_equal(scores[0], predict_scores(runs[0].model, runs[0].checkpoint,
                                                            in_memory[test]))


def test_training_with_the_data_on_the_device_equals_streaming_it(tmp_path, monkeypatch):
    """The resident path (standardized rows kept on the device, forced here on the CPU with a
    budget) gives the same bits as reading batches from disk every epoch; a budget too small
    for the rows streams them."""
    names = write_features(tmp_path / "features", 60)
    concat_features(tmp_path / "features", names, tmp_path / "concat")
    on_disk, _ = load_concat(tmp_path / "concat")
    targets = np.asarray(on_disk)[:, :, 0].mean(axis=1) - 999.5
    train, val = np.arange(0, 40), np.arange(40, 50)
    placed = []
    real = training.standardized_on_device
    monkeypatch.setattr(training, "standardized_on_device",
                        lambda *args: placed.append(len(args[1])) or real(*args))
    streamed = train_model(on_disk, targets, train, val, config(), progress=False)
    assert placed == []  # auto on the CPU: stream
    tiny = train_model(on_disk, targets, train, val, config(data_on_device_mb=0), progress=False)
    assert placed == []  # 50 rows of 4 × 6 float32 do not fit in 0 MB
    resident = train_model(on_disk, targets, train, val, config(data_on_device_mb=1),
                           progress=False)
    assert placed == [40, 10]  # training and validation rows, once for all epochs
    for run in (tiny, resident):
        assert run.history.equals(streamed.history)
        for key, value in streamed.checkpoint["state_dict"].items():
            assert torch.equal(value, run.checkpoint["state_dict"][key]), key


def test_the_device_budget_is_a_checked_param():
    from vidmem.core.errors import ParamsError

    base = {"lr": 1e-4, "epochs": 1, "batch_size": 4, "target": "short-term_memorability",
            "model": {"hidden_size": 4, "num_layers": 1}, "base": {"seed": 0}}
    assert TrainConfig.from_params(base).data_on_device_mb is None  # auto
    assert TrainConfig.from_params({**base, "train": {"data_on_device_mb": 512}}
                                   ).data_on_device_mb == 512
    with pytest.raises(ParamsError, match="train.data_on_device_mb"):
        TrainConfig.from_params({**base, "train": {"data_on_device_mb": -1}})


def test_killed_concat_leaves_no_output_that_looks_complete(tmp_path):
    names = write_features(tmp_path / "data" / "features", 3000, frames=8, dim=256)
    ground_truth = tmp_path / "data" / "gt.csv"
    ground_truth.write_text("video,short-term_memorability,nb_short-term_annotations,"
                            "long-term_memorability,nb_long-term_annotations\n"
                            + "".join(f"{n},0.5,30,0.5,9\n" for n in names))
    (tmp_path / "data" / "decode.json").write_text(
        '{"decoded": [' + ",".join(f'"{n}"' for n in names) + '], "skipped": []}')
    (tmp_path / "params.yaml").write_text(
        "data: {videos_dir: v, ground_truth: data/gt.csv, on_bad_input: skip}\n"
        "base: {seed: 0}\nconcat: {misalign_control: false}\nbackends: [b]\n")
    command = [sys.executable, str(REPO / "stages" / "concat.py"), "b", "--params",
               "params.yaml", "--features", "data/features", "--decode-report",
               "data/decode.json", "--out", "data/concat", "--no-progress"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    partial = []
    while time.time() < deadline and not partial:
        partial = [p for p in (tmp_path / "data").glob(".concat.*.tmp/features.npy")
                   if p.stat().st_size > 1_000_000]
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert partial, "concat finished before it could be interrupted"
    assert not (tmp_path / "data" / "concat").exists()
    subprocess.run(command, cwd=tmp_path, check=True, capture_output=True)
    features, videos = load_concat(tmp_path / "data" / "concat")
    assert videos == names and features.shape == (3000, 8, 256)
    np.testing.assert_array_equal(features[2999], ShardReader(tmp_path / "data" / "features")
                                  .load("v02999"))
    assert not list((tmp_path / "data").glob(".concat.*.tmp"))  # the rerun cleared the leftover


def test_bootstrap_in_chunks_gives_the_same_interval(monkeypatch):
    """The CI's resamples are drawn in chunks (memory bounded by the chunk, not the test set):
    the same random stream, so the same interval as drawing them all at once."""
    from vidmem.learn import metrics

    rng = np.random.default_rng(3)
    true = rng.uniform(size=500)
    predicted = true + rng.normal(0, 0.3, 500)
    whole = metrics.bootstrap_spearman_ci(true, predicted, 200, 0)
    monkeypatch.setattr(metrics, "BOOTSTRAP_CHUNK", 500 * 7)  # 7 resamples at a time
    assert metrics.bootstrap_spearman_ci(true, predicted, 200, 0) == whole


def test_concat_features_index_like_a_numpy_array(tmp_path):
    names = write_features(tmp_path / "features", 5, frames=2, dim=3)
    concat_features(tmp_path / "features", names, tmp_path / "concat")
    features, _ = load_concat(tmp_path / "concat")
    whole = np.asarray(features)
    for index in (slice(None), slice(1, 4), slice(None, None, -2), -1, 3, [4, -2, 0],
                  np.array([], dtype=int)):
        np.testing.assert_array_equal(features[index], whole[index])
    with pytest.raises(IndexError, match="out of range"):
        features[[5]]
