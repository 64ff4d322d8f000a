import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vidmem.app.predict import predict_videos
from vidmem.backends import create_backend
from vidmem.backends.precomputed import read_feature_file
from vidmem.core.errors import DataError
from vidmem.core.params import DecodeConfig, Params, TrainConfig
from vidmem.learn.heads import fit_head, head_checkpoint
from vidmem.learn.training import predict_scores, save_checkpoint, train_model
from vidmem.store.shards import ShardReader
from vidmem.video.frames import decode_video

from conftest import REPO, grey_ramp_video, proc_stat, processes


def precomputed(tmp_path, files: dict[str, str], dim=None):
    folder = tmp_path / "features"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    config = {"kind": "precomputed", "features_dir": str(folder), "dim": dim}
    return create_backend(Params({"backend": {"pre": config}}), "pre")


def test_text_files_with_commas_or_spaces_and_npy(tmp_path):
    backend = precomputed(tmp_path, {"video1.txt": "1 2 3\n4 5 6\n", "video2.csv": "1,2,3\n4,5,6\n"})
    np.save(backend.features_dir / "video3.npy", np.arange(6, dtype=np.float64).reshape(2, 3))
    out = tmp_path / "out"
    out.mkdir()
    result = backend.extract_videos(tmp_path / "unused", out, progress=False)
    assert result.videos == 3 and result.info["feature_dim"] == 3
    features = ShardReader(out)
    assert features.stems() == ["video1", "video2", "video3"]
    np.testing.assert_array_equal(features.load("video2"), [[1, 2, 3], [4, 5, 6]])
    assert features.load("video3").dtype == np.float32


def test_one_row_per_video_is_a_sequence_of_length_one(tmp_path):
    (tmp_path / "v.txt").write_text("0.5 0.25\n")
    assert read_feature_file(tmp_path / "v.txt").shape == (1, 2)


@pytest.mark.parametrize("files, dim, message", [
    ({"video1.txt": "1 2 x\n"}, None, "video1.txt.*line 1: 'x' is not a number"),
    ({"video1.txt": "1 2 3\n", "video2.txt": "1 2\n"}, None, "video2.txt: 2 values per row"),
    ({"video1.txt": "1 2 3\n"}, 4, "video1.txt.*expected 4"),
    ({"video1.txt": "1 2\n", "video2.txt": "1 2\n3 4\n"}, None,
     "video2.txt.*2 rows, but other videos have 1"),
    ({"video1.txt": "1 nan\n"}, None, "video1.txt.*NaN"),
    ({"video1.txt": "\n"}, None, "video1.txt.*no feature values"),
])
def test_malformed_files_name_the_file(tmp_path, files, dim, message):
    backend = precomputed(tmp_path, files, dim)
    with pytest.raises(DataError, match=message):
        backend.extract_videos(tmp_path / "unused", tmp_path, progress=False)


def test_predict_scores_unlabelled_videos_through_the_training_path(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for i, step in enumerate((3, 6, 9)):
        grey_ramp_video(videos / f"clip{i}.webm", n_frames=10, step=step)
    (videos / "broken.webm").write_bytes(b"not a video")
    params = {
        "data": {"videos_dir": str(videos), "ground_truth": "unused.csv", "on_bad_input": "skip"},
        "decode": {"n_frames": 4, "short_side": 16, "workers": 2},
        "cache": {"dir": None},
        "backend": {"mean": {"kind": "helpers:MeanColour", "frames_per_batch": 8,
                             "input": {"size": 8, "value": {"range": [0, 1]}}}},
        # `other`: a chain on another backend, which this checkpoint was not trained on.
        "backends": ["mean", "other"], "chains": {"mean": {"backend": "mean", "head": "lstm"},
                                                  "other": {"backend": "other", "head": "lstm"}},
    }
    rng = np.random.default_rng(0)
    features = rng.uniform(size=(30, 4, 6)).astype(np.float32)
    targets = features[:, :, 0].mean(axis=1)
    config = TrainConfig(lr=1e-2, epochs=3, batch_size=16, target="short-term_memorability",
                         hidden_size=8, num_layers=1, dropout=0.0, seed=0, device="cpu",
                         shuffle_train_labels=False)
    result = train_model(features, targets, np.arange(20), np.arange(20, 30), config, False)
    result.checkpoint["backend"] = "mean"
    save_checkpoint(result.checkpoint, tmp_path / "model.pt")

    # The features computed apart from the pipeline: decode each clip, then the test backend's
    # formula (per-channel mean and max of the [0, 1] values; the frames are uniform grey).
    decoding = DecodeConfig(n_frames=4, short_side=16, workers=1, short_video="repeat",
                            timeout_s=30, ffmpeg=None)
    expected_features = np.stack([
        np.concatenate([f.mean(axis=(1, 2)), f.max(axis=(1, 2))], axis=-1)
        for f in (decode_video(videos / f"clip{i}.webm", decoding).frames / 255.0
                  for i in range(3))]).astype(np.float32)  # [video, frame, 6]

    table, skipped = predict_videos(videos, Params(params), "mean", tmp_path / "model.pt", progress=False)
    assert list(table.video) == ["clip0.webm", "clip1.webm", "clip2.webm"]
    np.testing.assert_allclose(
        table.predicted, predict_scores(result.model, result.checkpoint, expected_features),
        rtol=1e-4, atol=1e-5)
    assert [s["video"] for s in skipped] == ["broken.webm"]
    with pytest.raises(DataError, match="trained on backend 'mean', but chain 'other' is on"):
        predict_videos(videos, Params(params), "other", tmp_path / "model.pt", progress=False)
    # A ridge head's checkpoint scores the same videos through the same path.
    ridge = fit_head("ridge", features[:20].mean(axis=1), targets[:20],
                     features[20:].mean(axis=1), targets[20:])
    save_checkpoint({**head_checkpoint(ridge, 6, config.target, False), "backend": "mean"},
                    tmp_path / "ridge.pt")
    table, _ = predict_videos(videos, Params(params), "mean", tmp_path / "ridge.pt", progress=False)
    assert list(table.video) == ["clip0.webm", "clip1.webm", "clip2.webm"]
    np.testing.assert_allclose(table.predicted, ridge.predict(expected_features.mean(axis=1)),
                               rtol=1e-4, atol=1e-5)


def child_pids(pid: int) -> set[int]:
    """The processes whose parent is `pid` (from /proc)."""
    return {child for child, fields in processes().items() if int(fields[1]) == pid}


def running_python(pids: set[int]) -> set[int]:
    """Those of `pids` that are Python processes still running (not ended, not zombies). A
    process may end while it is read (decode starts and ends an ffmpeg per video): it is
    then not running."""
    running = set()
    for pid in pids:
        try:
            executable = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        fields = proc_stat(pid)
        if fields is not None and "python" in Path(executable).name and fields[0] != "Z":
            running.add(pid)
    return running


@pytest.mark.parametrize("workers", [1, 2])
def test_killed_stage_leaves_no_output_and_rerun_matches(tmp_path, workers):
    """kill -9 in the middle of decode: no output that looks complete, and (with 2 workers,
    which run as processes) no worker process left behind; a re-run gives the same bytes as
    an uninterrupted run."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(30):
        grey_ramp_video(videos / f"v{i:02d}.webm", n_frames=60, step=3, size=(320, 240))
    (tmp_path / "params.yaml").write_text(
        f"data: {{videos_dir: {videos}, ground_truth: x.csv, on_bad_input: skip}}\n"
        f"decode: {{n_frames: 8, short_side: 240, workers: {workers}}}\ncache: {{dir: null}}\n")
    (tmp_path / "geometry.json").write_text('{"short_side": 240, "input_geometry": null}')

    def decode(out):
        return [sys.executable, str(REPO / "stages" / "decode.py"), "--params", "params.yaml",
                "--geometry", "geometry.json", "--out", out, "--report", f"{out}.json",
                "--no-progress"]

    process = subprocess.Popen(decode("frames"), cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    # Decoded videos wait in the output's scratch folder (cache.dir is null) until sharded.
    while time.time() < deadline and not any(tmp_path.glob(".frames.*.tmp/.entries/*.tif")):
        time.sleep(0.05)
    workers_alive = running_python(child_pids(process.pid))
    if workers > 1 and sys.platform.startswith("linux"):
        assert len(workers_alive) == workers  # the worker processes, not ffmpeg
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.time() + 10
    while workers_alive and time.time() < deadline:
        workers_alive = running_python(workers_alive)
        time.sleep(0.05)
    assert not workers_alive  # they died with the stage (else they would wait for work forever)
    assert not (tmp_path / "frames").exists() and not (tmp_path / "frames.json").exists()
    assert list(tmp_path.glob(".frames.*.tmp"))  # the partial work stayed under a temp name

    subprocess.run(decode("frames"), cwd=tmp_path, check=True, capture_output=True)
    subprocess.run(decode("clean"), cwd=tmp_path, check=True, capture_output=True)
    assert not list(tmp_path.glob(".frames.*.tmp"))
    names = sorted(p.name for p in (tmp_path / "clean").iterdir())
    assert "index.json" in names and all(n.startswith("shard-") for n in names if n != "index.json")
    assert names == sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert len(ShardReader(tmp_path / "frames").stems()) == 30
    for name in names:
        assert (tmp_path / "frames" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()
    assert pd.read_json(tmp_path / "frames.json", typ="series")["decoded"] == \
        pd.read_json(tmp_path / "clean.json", typ="series")["decoded"]
