"""The per-video half of the DAG as one library call: decode → normalize → extract.

Each stage script runs one step (`frames.decode_step`, `normalize.normalize_step`,
`features.extract_step`);
`predict` and the benchmarks run both into a work folder with
`features_for_videos`. So the stages, the scoring of unlabelled videos and the timings share one
wiring, and each step writes its output folder whole or not at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vidmem.backends import backend_config, decode_config
from vidmem.backends.base import Backend, extract_step
from vidmem.core.files import video_key
from vidmem.core.params import Params
from vidmem.store.framestore import FrameFormat
from vidmem.video.frames import decode_step
from vidmem.video.normalize import normalize_step


@dataclass
class VideoFeatures:
    features_dir: Path
    video_names: dict[str, str]  # output stem → the video's file name
    skipped: list[dict[str, str]]  # videos that could not be decoded, with the reason


def features_for_videos(inputs_dir: str | os.PathLike, work_dir: str | os.PathLike,
                        params: Params, backend_name: str,
                        progress: bool = True, backend: Backend | None = None) -> VideoFeatures:
    """Features of every video in `inputs_dir` the way the training stages make them (same
    params, same per-video cache), in `work_dir/{frames,normalized,features}`, by `backend`
    (default: built from params; predict passes one rebuilt from its checkpoint's state).

    For a backend that reads no frames, `inputs_dir` holds its per-video files instead (or, for
    a caption backend, the videos whose captions it scores).
    """
    work = Path(work_dir)
    data = params.data
    cache_dir = params.cache.dir
    config = backend_config(params, backend_name)
    backend = backend or config.build(cache_dir)
    names: dict[str, str] = {}
    skipped: list[dict[str, str]] = []
    if config.spec is not None:
        decode = decode_config(params)
        report = decode_step(inputs_dir, work / "frames", decode, data.on_bad_input, cache_dir,
                             progress)
        names = {video_key(name): name for name in report.decoded}
        skipped = report.skipped
        normalize_step(work / "frames", work / "normalized", config.spec,
                       config.weights_input_range(),
                       FrameFormat(decode.format, decode.jpeg_quality), cache_dir, progress)
    else:
        backend.use_inputs(inputs_dir)
    result = extract_step(work / "normalized", work / "features", backend, progress)
    return VideoFeatures(work / "features", {**names, **result.video_names},
                         skipped + result.skipped)
