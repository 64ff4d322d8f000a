"""The per-video half of the DAG as one library call: decode → extract.

Each stage script runs one step (`frames.decode_step`, `features.extract_step`);
`predict` and the benchmarks run both into a work folder with
`features_for_videos`. So the stages, the scoring of unlabelled videos and the timings share one
wiring, and each step writes its output folder whole or not at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidmem.backends import backend_config, decode_config
from vidmem.core.params import CacheConfig, DataConfig
from vidmem.store.features import extract_step
from vidmem.video.frames import decode_step


@dataclass
class VideoFeatures:
    features_dir: Path
    video_names: dict[str, str]  # output stem → the video's file name
    skipped: list[dict[str, str]]  # videos that could not be decoded, with the reason


def features_for_videos(inputs_dir: str | os.PathLike, work_dir: str | os.PathLike,
                        params: dict[str, Any], backend_name: str,
                        progress: bool = True) -> VideoFeatures:
    """Features of every video in `inputs_dir` the way the training stages make them (same
    params, same per-video cache), in `work_dir/{frames,features}`.

    For a backend that reads no frames, `inputs_dir` holds its per-video files instead.
    """
    work = Path(work_dir)
    data = DataConfig.from_params(params)
    cache_dir = CacheConfig.from_params(params).dir
    backend = backend_config(params, backend_name).build(cache_dir)
    names: dict[str, str] = {}
    skipped: list[dict[str, str]] = []
    if backend.uses_frames:
        report = decode_step(inputs_dir, work / "frames", decode_config(params),
                             data.on_bad_input, cache_dir, progress)
        names = {Path(name).stem: name for name in report.decoded}
        skipped = report.skipped
    else:
        backend.use_inputs(inputs_dir)
    extract_step(work / "frames", work / "features", backend, progress)
    return VideoFeatures(work / "features", names, skipped)
