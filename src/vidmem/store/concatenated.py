"""A concat output (`features.npy` float32 [videos, frames, dim] + `videos.json`), read on
demand: what train, evaluate and predict read. Written by `vidmem.store.features.concat_features`.
Kept apart from the extract-output readers so the training stages depend on this file only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vidmem.core.errors import DataError
from vidmem.core.files import load_npy_header, read_json

CONCAT_FEATURES = "features.npy"  # float32 [videos, frames, dim]
CONCAT_VIDEOS = "videos.json"  # the video name of each row, in order


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
