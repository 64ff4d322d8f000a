"""Reading an extract output, and packing it into one array per backend (concat).

The extract loop itself is `vidmem.backends.base.Backend.extract_videos`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vidmem.bottlenecks import read_video_bottlenecks
from vidmem.errors import DataError
from vidmem.files import atomic_dir, atomic_path, load_npy, write_json

if TYPE_CHECKING:  # features.py stays below the backends in the import graph
    from vidmem.backends.base import Backend, ExtractResult

INFO_FILE = "info.json"


def extract_step(normalized_dir: str | os.PathLike, out_dir: str | os.PathLike, backend: Backend,
                 progress: bool = True) -> ExtractResult:
    """The extract stage: one backend's features for every video plus what made them
    (`info.json`), written whole or not at all."""
    with atomic_dir(out_dir) as out:
        result = backend.extract_videos(normalized_dir, out, progress=progress)
        write_json(out / INFO_FILE, result.info)
    return result


def read_video_features(features_dir: Path, stem: str) -> np.ndarray:
    """float32 [frames, dim] from `<stem>.npy` or from the bottleneck files in `<stem>/`."""
    path = features_dir / f"{stem}.npy"
    if path.exists():
        return load_npy(path)
    return read_video_bottlenecks(features_dir / stem)


def feature_stems(features_dir: str | os.PathLike) -> list[str]:
    """Stems of the videos that have features in an extract output, sorted."""
    features_dir = Path(features_dir)
    return sorted(p.stem if p.suffix == ".npy" else p.name for p in features_dir.iterdir()
                  if p.suffix == ".npy" or p.is_dir())


def concat_features(features_dir: str | os.PathLike, videos: Sequence[str],
                    out_file: str | os.PathLike, misalign_seed: int | None = None) -> dict[str, Any]:
    """Pack per-video features into one `[videos, frames, dim]` array with the ids beside it.

    `videos` are video file names (`video10.webm`) in the order wanted; each must have a
    `<stem>.npy` (or, for TF-for-Poets backends, a `<stem>/` folder of per-frame bottleneck text
    files: "concat bottlenecks") in `features_dir`, else DataError names the missing ones. Ids
    and rows are saved together in one `.npz`, so they cannot drift apart.

    `misalign_seed` is for the control experiment only: it deliberately pairs every video's id
    with another video's features (a fixed permutation), as a buggy pipeline would. Test
    Spearman must then fall to about 0.
    """
    features_dir = Path(features_dir)
    available = set(feature_stems(features_dir))
    missing = [v for v in videos if Path(v).stem not in available]
    if missing:
        raise DataError(f"{features_dir}: no features for {len(missing)} video(s), e.g. "
                        f"{missing[:5]}; re-run the extract stage")
    arrays = [read_video_features(features_dir, Path(v).stem) for v in videos]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise DataError(f"{features_dir}: per-video feature shapes differ ({sorted(shapes)[:4]}); "
                        "every video must have the same number of frames and dimensions")
    stacked = np.stack(arrays).astype(np.float32)
    if misalign_seed is not None:
        stacked = stacked[np.random.default_rng(misalign_seed).permutation(len(stacked))]
    if stacked.ndim != 3:
        raise DataError(f"{features_dir}: expected [frames, dim] per video, got {stacked.shape[1:]}")
    with atomic_path(out_file, suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, features=stacked, videos=np.array(videos, dtype=str))
    return {"videos": len(videos), "frames": int(stacked.shape[1]), "dim": int(stacked.shape[2])}


def load_concat(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Features [videos, frames, dim] and video names from a concat `.npz`."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} not found: run the concat stage first (`dvc repro`)")
    with np.load(path, allow_pickle=False) as data:
        return data["features"], [str(v) for v in data["videos"]]
