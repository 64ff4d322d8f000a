"""Reading an extract output, and packing it into one array per backend (concat).

The extract loop itself is `vidmem.backends.base.Backend.extract_videos`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from vidmem.bottlenecks import read_video_bottlenecks
from vidmem.errors import DataError
from vidmem.files import atomic_dir, load_npy, load_npy_header, read_json, write_json

if TYPE_CHECKING:  # features.py stays below the backends in the import graph
    from vidmem.backends.base import Backend, ExtractResult

INFO_FILE = "info.json"


def extract_step(frames_dir: str | os.PathLike, out_dir: str | os.PathLike, backend: Backend,
                 progress: bool = True) -> ExtractResult:
    """The extract stage: one backend's features for every video plus what made them
    (`info.json`), written whole or not at all."""
    with atomic_dir(out_dir) as out:
        result = backend.extract_videos(frames_dir, out, progress=progress)
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


CONCAT_FEATURES = "features.npy"  # float32 [videos, frames, dim]
CONCAT_VIDEOS = "videos.json"  # the video name of each row, in order


def concat_features(features_dir: str | os.PathLike, videos: Sequence[str],
                    out_dir: str | os.PathLike, misalign_seed: int | None = None,
                    stems: Sequence[str] | None = None, progress: bool = False) -> dict[str, Any]:
    """Pack per-video features into one `[videos, frames, dim]` array with the ids beside it:
    `out_dir/features.npy` and `out_dir/videos.json`, written video by video (memory holds one
    video at a time, whatever the data set's size) into a folder that appears whole or not at
    all, so rows and ids cannot drift apart.

    `videos` are video file names (`video10.webm`) in the order wanted; each must have a
    `<stem>.npy` (or, for TF-for-Poets backends, a `<stem>/` folder of per-frame bottleneck text
    files: "concat bottlenecks") in `features_dir`, else DataError names the missing ones.
    `stems` gives the feature file stems when they are not the names' stems.

    `misalign_seed` is for the control experiment only: it deliberately pairs every video's id
    with another video's features (a fixed permutation), as a buggy pipeline would. Test
    Spearman must then fall to about 0.
    """
    features_dir = Path(features_dir)
    stems = [Path(v).stem for v in videos] if stems is None else list(stems)
    available = set(feature_stems(features_dir))
    missing = [v for v, stem in zip(videos, stems, strict=True) if stem not in available]
    if missing:
        raise DataError(f"{features_dir}: no features for {len(missing)} video(s), e.g. "
                        f"{missing[:5]}; re-run the extract stage")
    if not stems:
        raise DataError(f"{features_dir}: no videos to concatenate")
    order = np.arange(len(stems))
    if misalign_seed is not None:
        order = np.random.default_rng(misalign_seed).permutation(len(stems))
    first = read_video_features(features_dir, stems[order[0]])
    if first.ndim != 2:
        raise DataError(f"{features_dir}: expected [frames, dim] per video, got {list(first.shape)}")
    shape = (len(stems), *first.shape)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
              "fortran_order": False, "shape": shape}
    with atomic_dir(out_dir) as out:
        with open(out / CONCAT_FEATURES, "wb") as f:
            np.lib.format.write_array_header_2_0(f, header)
            for row in tqdm(order, desc="concat", unit="video", disable=not progress):
                video = first if row == order[0] else read_video_features(features_dir, stems[row])
                if video.shape != first.shape:
                    raise DataError(
                        f"{features_dir}: {stems[row]} has features of shape {list(video.shape)}, "
                        f"{stems[order[0]]} {list(first.shape)}; every video must have the same "
                        "number of frames and dimensions")
                f.write(np.ascontiguousarray(video, dtype=np.float32).tobytes())
        write_json(out / CONCAT_VIDEOS, list(videos))
    return {"videos": shape[0], "frames": int(shape[1]), "dim": int(shape[2])}


class ConcatFeatures:
    """A concat output's features, read from disk on demand: `features[rows]` (an index array,
    a slice or an int) returns those videos' rows as a float32 array, and nothing else is kept in
    memory, so a data set larger than RAM can be trained on. Plain reads, not a memory map: the
    pages of a map would count towards the process's memory as they are touched."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        header = load_npy_header(self.path)
        if header.dtype != np.float32 or len(header.shape) != 3 or header.fortran_order:
            raise DataError(f"{self.path}: expected float32 [videos, frames, dim] in C order, "
                            f"got {header.dtype} {list(header.shape)}; re-run the concat stage")
        self.shape: tuple[int, int, int] = header.shape
        self.dtype = np.dtype(np.float32)
        self._offset = header.offset
        self._row_bytes = int(np.prod(self.shape[1:])) * 4
        self._fd = os.open(self.path, os.O_RDONLY)

    ndim = 3

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, slice):
            rows = np.arange(*index.indices(len(self)))
        elif np.ndim(index) == 0:
            return self[np.array([index])][0]
        else:
            rows = np.asarray(index, dtype=np.int64)
            rows = np.where(rows < 0, rows + len(self), rows)
            if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
                raise IndexError(f"row index out of range for {len(self)} videos")
        out = np.empty((len(rows), *self.shape[1:]), np.float32)
        for k, row in enumerate(rows):  # each row straight into its place: no extra copy
            read = os.preadv(self._fd, [memoryview(out[k]).cast("B")],
                             self._offset + int(row) * self._row_bytes)
            if read != self._row_bytes:
                raise DataError(f"{self.path}: truncated at row {row}; re-run the concat stage")
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """The whole array in memory (small data sets, tests)."""
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


def load_concat(path: str | os.PathLike) -> tuple[ConcatFeatures, list[str]]:
    """Features [videos, frames, dim] (read on demand) and the video name of each row, from a
    concat output folder."""
    path = Path(path)
    if not (path / CONCAT_FEATURES).exists() or not (path / CONCAT_VIDEOS).exists():
        raise DataError(f"{path} is not a concat output (no {CONCAT_FEATURES} and "
                        f"{CONCAT_VIDEOS}): run the concat stage first (`dvc repro`)")
    features = ConcatFeatures(path / CONCAT_FEATURES)
    videos = [str(v) for v in read_json(path / CONCAT_VIDEOS)]
    if len(videos) != len(features):
        raise DataError(f"{path}: {len(videos)} video names for {len(features)} rows; re-run "
                        "the concat stage")
    return features, videos
