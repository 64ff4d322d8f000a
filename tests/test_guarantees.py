"""The README's guarantees about bad input, each as a test that fails when it is broken.

- "Every video gives exactly N frames or none": whatever mix of good, short, empty, truncated
  and non-video files, each decoded video has exactly `n_frames` frames and every other one is
  skipped with a reason.
- "Bad input never misaligns features and labels": with bad videos between good ones, every row
  of the concat output carries its own video's features and that video's label.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from vidmem.app.pipeline import features_for_videos
from vidmem.core.files import write_json
from vidmem.core.params import Params
from vidmem.data.dataset import dataset_from_reports
from vidmem.data.groundtruth import read_ground_truth
from vidmem.store.concatenated import load_concat
from vidmem.store.features import concat_features
from vidmem.store.shards import ShardReader
from vidmem.video.frames import decode_videos, list_videos

from conftest import grey_ramp_video

KINDS = ("good", "short", "empty", "truncated", "text")


def make(path, kind, frames):
    if kind in ("good", "short"):
        grey_ramp_video(path, n_frames=frames if kind == "good" else 2, size=(32, 24))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        grey_ramp_video(path, n_frames=frames, size=(32, 24))
        path.write_bytes(path.read_bytes()[:200])
    else:
        path.write_text("not a video")


@settings(max_examples=8)
@given(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=5),
       n_frames=st.integers(1, 6), short_video=st.sampled_from(["repeat", "skip"]))
def test_every_video_gives_exactly_n_frames_or_none(tmp_path_factory, decode_config, kinds,
                                                    n_frames, short_video):
    folder = tmp_path_factory.mktemp("videos")
    for i, kind in enumerate(kinds):
        make(folder / f"v{i}.webm", kind, frames=8)
    config = replace(decode_config, n_frames=n_frames, short_video=short_video)
    out = tmp_path_factory.mktemp("frames")
    report = decode_videos(list_videos(folder), out, config, "skip", progress=False)
    assert len(report.decoded) + len(report.skipped) == len(kinds)
    reader = ShardReader(out)
    assert sorted(reader.stems()) == sorted(name[:-5] for name in report.decoded)
    for name in report.decoded:
        assert reader.load(name[:-5]).shape[0] == n_frames
    for i, kind in enumerate(kinds):
        decoded = f"v{i}.webm" in report.decoded
        expected = kind == "good" or (kind == "short" and (n_frames <= 2 or short_video == "repeat"))
        assert decoded == expected, (kind, n_frames, short_video, report.skipped)
    assert all(s["reason"] for s in report.skipped)


def test_bad_videos_between_good_ones_never_misalign_features_and_labels(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    steps = {}
    for i in range(8):
        name = f"video{i}.webm"
        if i % 3 == 1:
            (videos / name).write_bytes(b"broken" * i)  # bad, between good ones
        else:
            steps[name] = 2 + i  # the grey ramp's step: a feature the label is made from
            grey_ramp_video(videos / name, n_frames=8, step=steps[name], size=(32, 24))
    labels = {f"video{i}.webm": round(0.1 * i + 0.05, 4) for i in range(8)}
    labels["video9.webm"] = 0.5  # a label without a video
    truth = pd.DataFrame({"video": list(labels), "short-term_memorability": list(labels.values()),
                          "nb_short-term_annotations": 10, "long-term_memorability": 0.5,
                          "nb_long-term_annotations": 5})
    truth.to_csv(tmp_path / "gt.csv", index=False)
    params = {"data": {"videos_dir": str(videos), "ground_truth": str(tmp_path / "gt.csv"),
                       "on_bad_input": "skip"},
              "decode": {"n_frames": 4, "short_side": 24, "workers": 2}, "cache": {"dir": None},
              "backend": {"mean": {"kind": "helpers:MeanColour", "frames_per_batch": 8,
                                   "input": {"size": 8, "value": {"range": [0, 1]}}}}}
    made = features_for_videos(videos, tmp_path / "work", Params(params), "mean", progress=False)
    assert sorted(s["video"] for s in made.skipped) == ["video1.webm", "video4.webm",
                                                        "video7.webm"]
    write_json(tmp_path / "decode.json", {"decoded": sorted(made.video_names.values()),
                                          "skipped": made.skipped})
    dataset = dataset_from_reports(read_ground_truth(tmp_path / "gt.csv"), tmp_path / "decode.json",
                                   "skip")
    concat_features(made.features_dir, dataset.videos, tmp_path / "concat")
    features, rows = load_concat(tmp_path / "concat")
    assert sorted(rows) == sorted(steps)
    scores = read_ground_truth(tmp_path / "gt.csv").scores(rows, "short-term_memorability")
    for row, (video, label) in enumerate(zip(rows, scores, strict=True)):
        assert label == np.float32(labels[video])
        # Frame i of a video is grey at 10 + step*i; the 4 kept frames are 1, 3, 5 and 7, so
        # the last minus the first is 6 steps: each video's own step, never a neighbour's.
        brightness = features[row][:, 0] * 255
        assert abs(brightness[-1] - brightness[0] - 6 * steps[video]) <= 3, video
