"""Defects found by trying vidmem as a new user would, each pinned by a test that fails on the
old behaviour."""

from __future__ import annotations

import subprocess
import tomllib

import numpy as np
import pytest

from vidmem.backends import create_backend
from vidmem.core.errors import DataError, ParamsError
from vidmem.core.params import Params
from vidmem.data.groundtruth import COLUMNS, read_ground_truth
from vidmem.video.ffmpeg_bin import ffmpeg_executable
from vidmem.video.frames import decode_videos, list_videos

from conftest import REPO, grey_ramp_video


def decoded(tmp_path, videos, decode_config):
    out = tmp_path / "frames"
    out.mkdir(exist_ok=True)
    return decode_videos(list_videos(videos), out, decode_config, "skip", progress=False)


def test_symlink_out_of_the_videos_folder_is_reported_not_read(tmp_path, decode_config):
    videos = tmp_path / "videos"
    videos.mkdir()
    grey_ramp_video(videos / "good.webm", 10)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    grey_ramp_video(outside / "real.webm", 10)
    (videos / "escape.webm").symlink_to(outside / "real.webm")  # a decodable file, outside
    (videos / "device.webm").symlink_to("/dev/zero")  # would never finish being read
    (videos / "inside.webm").symlink_to(videos / "good.webm")  # a link within is fine
    report = decoded(tmp_path, videos, decode_config)
    assert report.decoded == ["good.webm", "inside.webm"]
    reasons = {s["video"]: s["reason"] for s in report.skipped}
    assert set(reasons) == {"device.webm", "escape.webm"}
    assert all("outside the videos folder" in r for r in reasons.values())


def test_videos_folder_itself_may_be_a_link(tmp_path, decode_config):
    real = tmp_path / "storage"
    real.mkdir()
    grey_ramp_video(real / "clip.webm", 10)
    (tmp_path / "videos").symlink_to(real)
    assert decoded(tmp_path, tmp_path / "videos", decode_config).decoded == ["clip.webm"]


def test_audio_only_webm_says_no_video_stream(tmp_path, decode_config):
    videos = tmp_path / "videos"
    videos.mkdir()
    subprocess.run([ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
                    "-i", "anullsrc=r=8000:cl=mono", "-t", "0.5", "-c:a", "libopus",
                    str(videos / "audio.webm")], check=True)
    report = decoded(tmp_path, videos, decode_config)
    assert report.skipped == [{"video": "audio.webm", "stage": "decode",
                               "reason": "no video stream (audio only, or not a video file)"}]


def test_skip_reasons_show_plain_values(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text(f"{','.join(COLUMNS)}\nvideo1.webm,,30,0.5,9\nvideo2.webm,2.5,30,0.5,9\n")
    reasons = [s["reason"] for s in read_ground_truth(path, "skip").skipped]
    assert reasons == ["short-term_memorability is nan, expected a number in [0, 1]",
                       "short-term_memorability is 2.5, expected a number in [0, 1]"]


def test_torch_backend_without_weights_key_is_an_error_not_random_weights():
    section = {"kind": "torch", "model": "efficientnet_lite0", "device": "cpu",
               "input": {"size": 32, "value": "symmetric_range"}}
    with pytest.raises(ParamsError, match="'backend.b.weights' is missing.*random"):
        create_backend(Params({"backend": {"b": section}}), "b")
    backend = create_backend(Params({"backend": {"b": {**section, "weights": "random"}}}), "b")
    assert backend.random_weights  # asked for by name: allowed, and labelled


def test_poets_honours_cache_dir_null_and_ignores_no_undocumented_key(tmp_path, monkeypatch):
    from conftest import tensorflow_or_skip
    from helpers import save_poets_graph

    tensorflow_or_skip()
    save_poets_graph(tmp_path / "g.pb", size=16)
    monkeypatch.chdir(tmp_path)  # the old code wrote .cache/vidmem/... into the working folder
    section = {"kind": "poets", "graph": str(tmp_path / "g.pb"), "cache_dir": "ignored",
               "input": {"size": 16, "value": "tf_inception"}}
    backend = create_backend(Params({"backend": {"p": section}}), "p", cache_root=None)
    frames = np.full((2, 16, 16, 3), 7, np.uint8)
    backend.extract(frames)
    assert not (tmp_path / ".cache").exists() and not (tmp_path / "ignored").exists()
    assert str(backend.bottleneck_dir).startswith(backend._scratch.name)
    cached = create_backend(Params({"backend": {"p": section}}), "p", cache_root=tmp_path / "c")
    cached.extract(frames)
    assert list((tmp_path / "c" / "bottlenecks").iterdir())  # under cache.dir when it is set


def test_predict_with_a_precomputed_backend_reads_the_given_folder(tmp_path):
    from vidmem.app.predict import predict_videos
    from vidmem.core.params import Params, TrainConfig
    from vidmem.learn.training import save_checkpoint, train_model

    training, to_score = tmp_path / "training", tmp_path / "new"
    for folder, names in ((training, ["a", "b"]), (to_score, ["x", "y", "z"])):
        folder.mkdir()
        for k, name in enumerate(names):
            (folder / f"{name}.txt").write_text(f"{k} {k + 1}\n{k} 0\n")
    params = {"data": {"videos_dir": "unused", "ground_truth": "unused.csv"},
              "cache": {"dir": None},
              "backend": {"pre": {"kind": "precomputed", "features_dir": str(training)}},
              "backends": ["pre"], "chains": {"pre": {"backend": "pre", "head": "lstm"}}}
    rng = np.random.default_rng(0)
    features = rng.uniform(size=(12, 2, 2)).astype(np.float32)
    config = TrainConfig(lr=1e-2, epochs=2, batch_size=4, target="short-term_memorability",
                         hidden_size=4, num_layers=1, dropout=0.0, seed=0, device="cpu",
                         shuffle_train_labels=False)
    result = train_model(features, features[:, 0, 0], np.arange(8), np.arange(8, 12), config, False)
    result.checkpoint["backend"] = "pre"
    save_checkpoint(result.checkpoint, tmp_path / "model.pt")
    table, _ = predict_videos(to_score, Params(params), "pre", tmp_path / "model.pt", progress=False)
    assert list(table.video) == ["x", "y", "z"]  # the folder given, not features_dir
    with pytest.raises(DataError, match="not found"):
        predict_videos(tmp_path / "missing", Params(params), "pre", tmp_path / "model.pt", progress=False)


def test_declared_python_version_is_the_one_the_code_needs():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == ">=3.11"  # hashlib.file_digest, datetime.UTC
    assert project["tool"]["ruff"]["target-version"] == "py311"


def test_readme_and_docs_tables_have_no_blank_line_inside():
    """A blank line inside a Markdown table ends it: the rows after it render as plain text."""
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        lines = page.read_text().splitlines() + [""]
        for number, line in enumerate(lines[1:-2], 2):
            if not line.strip():
                before, after, next_after = lines[number - 2], lines[number], lines[number + 1]
                new_table = next_after.replace(" ", "").startswith("|-")  # header, then |---|
                assert not (before.startswith("|") and after.startswith("|") and not new_table), \
                    f"{page.name} line {number}: blank line inside a table"


def test_docs_say_how_webm_frames_are_counted():
    text = (REPO / "docs/pipeline.md").read_text()
    assert "stream copy counts WebM" not in text
    assert "vidmem.video.matroska" in text
