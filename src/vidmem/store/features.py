"""Reading an extract output, and packing it into one array per backend (concat).

The extract stage itself is `vidmem.backends.base.extract_step`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vidmem.core.errors import DataError
from vidmem.core.files import atomic_dir, video_key, write_json
from vidmem.store.bottlenecks import read_video_bottlenecks
from vidmem.store.concatenated import CONCAT_FEATURES, CONCAT_VIDEOS
from vidmem.store.shards import ShardReader, is_sharded


class _BottleneckFolders:
    """An extract output in the TF-for-Poets layout: `<stem>/` folders of per-frame bottleneck
    text files (what `poets` writes)."""

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise DataError(f"{folder} not found: run the extract stage first (`dvc repro`)")
        self.folder = folder

    def stems(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir() if p.is_dir())

    def load(self, stem: str) -> np.ndarray:
        return read_video_bottlenecks(self.folder / stem)


def open_features(features_dir: str | os.PathLike) -> ShardReader | _BottleneckFolders:
    """An extract output's videos: `stems()` and `load(stem)` → float32 [frames, dim]."""
    features_dir = Path(features_dir)
    return ShardReader(features_dir) if is_sharded(features_dir) \
        else _BottleneckFolders(features_dir)


def feature_stems(features_dir: str | os.PathLike) -> list[str]:
    """Stems of the videos that have features in an extract output, sorted."""
    return open_features(features_dir).stems()




def concat_features(features_dir: str | os.PathLike, videos: Sequence[str],
                    out_dir: str | os.PathLike, misalign_seed: int | None = None,
                    stems: Sequence[str] | None = None, progress: bool = False) -> dict[str, Any]:
    """Pack per-video features into one `[videos, frames, dim]` array with the ids beside it:
    `out_dir/features.npy` and `out_dir/videos.json`, written video by video (memory holds one
    video at a time, whatever the data set's size) into a folder that appears whole or not at
    all, so rows and ids cannot drift apart.

    `videos` are video file names (`video10.webm`) in the order wanted; each must have
    features in `features_dir` (in its shards, or for TF-for-Poets backends a `<stem>/` folder
    of per-frame bottleneck text files: "concat bottlenecks"), else DataError names the
    missing ones.
    `stems` gives the feature file stems when they are not the names' stems.

    `misalign_seed` is for the control experiment only: it deliberately pairs every video's id
    with another video's features (a fixed permutation), as a buggy pipeline would. Test
    Spearman must then fall to about 0.
    """
    features_dir = Path(features_dir)
    stems = [video_key(v) for v in videos] if stems is None else list(stems)
    reader = open_features(features_dir)
    available = set(reader.stems())
    missing = [v for v, stem in zip(videos, stems, strict=True) if stem not in available]
    if missing:
        raise DataError(f"{features_dir}: no features for {len(missing)} video(s), e.g. "
                        f"{missing[:5]}; re-run the extract stage")
    if not stems:
        raise DataError(f"{features_dir}: no videos to concatenate")
    order = np.arange(len(stems))
    if misalign_seed is not None:
        order = np.random.default_rng(misalign_seed).permutation(len(stems))
    first = reader.load(stems[order[0]])
    if first.ndim != 2:
        raise DataError(f"{features_dir}: expected [frames, dim] per video, got {list(first.shape)}")
    shape = (len(stems), *first.shape)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
              "fortran_order": False, "shape": shape}
    with atomic_dir(out_dir) as out:
        with open(out / CONCAT_FEATURES, "wb") as f:
            np.lib.format.write_array_header_2_0(f, header)
            for row in tqdm(order, desc="concat", unit="video", disable=not progress):
                video = first if row == order[0] else reader.load(stems[row])
                if video.shape != first.shape:
                    raise DataError(
                        f"{features_dir}: {stems[row]} has features of shape {list(video.shape)}, "
                        f"{stems[order[0]]} {list(first.shape)}; every video must have the same "
                        "number of frames and dimensions")
                f.write(np.ascontiguousarray(video, dtype=np.float32).tobytes())
        write_json(out / CONCAT_VIDEOS, list(videos))
    return {"videos": shape[0], "frames": int(shape[1]), "dim": int(shape[2])}
