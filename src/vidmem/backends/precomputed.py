"""Features that come with a data set, imported instead of extracted.

params.yaml, `backend.<name>`:
    kind: precomputed
    features_dir: data/precomputed/<name>   # one file per video, named after the video's stem
    dim: null                               # expected feature dimension (null: from the first file)
    input: null                             # no frames

`vidmem predict --backend <name> --videos FOLDER` reads the feature files of the videos
to score from FOLDER (same layout) instead of `features_dir`.

Each file (`video10.npy`, `video10.txt` or `video10.csv`) holds one row per frame, or one row for
the whole video, of whitespace- or comma-separated floats. Keep the folder under
`data/precomputed/`: the extract stage depends on that folder, so DVC re-runs it when files change.

A malformed file (non-numeric value, wrong dimension, a different number of rows than the other
videos) stops the run with the file's name. Skipping it instead would give this backend another
set of videos than the others, and the shared split would no longer fit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vidmem.backends.base import Backend, ExtractResult
from vidmem.core.errors import DataError
from vidmem.core.files import load_npy
from vidmem.core.params import as_int, required_str
from vidmem.store.shards import write_arrays
from vidmem.video.geometry import InputSpec

FEATURE_SUFFIXES = (".npy", ".txt", ".csv")


def read_feature_file(path: str | os.PathLike) -> np.ndarray:
    """float32 [rows, dim] from a .npy or a text file of whitespace/comma-separated floats."""
    path = Path(path)
    if path.suffix == ".npy":
        array = load_npy(path)
        if array.ndim == 1:
            array = array[None]
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
            raise DataError(f"{path}: expected a numeric [rows, dim] array, got {array.dtype} "
                            f"{list(array.shape)}")
    else:
        rows = []
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not a text file of numbers ({exc})") from exc
        for number, line in enumerate(text.splitlines(), 1):
            fields = line.replace(",", " ").split()
            if not fields:
                continue
            try:
                rows.append([float(v) for v in fields])
            except ValueError:
                bad = next(v for v in fields if not _is_float(v))
                raise DataError(f"{path}, line {number}: {bad!r} is not a number") from None
        if not rows:
            raise DataError(f"{path}: no feature values")
        if len({len(r) for r in rows}) != 1:
            raise DataError(f"{path}: rows have different numbers of values")
        array = np.array(rows)
    if not np.isfinite(array).all():
        raise DataError(f"{path}: NaN or infinite feature values")
    return array.astype(np.float32)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class PrecomputedConfig:
    """`backend.<name>` for `kind: precomputed`."""

    features_dir: str
    dim: int | None

    @classmethod
    def from_section(cls, section: dict[str, Any], where: str) -> PrecomputedConfig:
        folder = required_str(section.get("features_dir"), f"{where}.features_dir",
                              "the folder of the feature files")
        dim = section.get("dim")
        return cls(features_dir=folder,
                   dim=None if dim is None else as_int(dim, f"{where}.dim", 1))


class Precomputed(Backend):
    """Reads per-video feature files; it never sees frames."""

    uses_frames = False
    weights = "precomputed features"

    def __init__(self, name: str, spec: InputSpec | None, config: dict[str, Any],
                 cache_root: str | os.PathLike | None = None) -> None:
        super().__init__(name, spec, config, cache_root)
        settings = PrecomputedConfig.from_section(config, f"backend.{name}")
        self.feature_dim = settings.dim or 0
        self.use_inputs(settings.features_dir)

    def use_inputs(self, folder: str | os.PathLike) -> None:
        self.features_dir = Path(folder)
        self.weights = f"precomputed features from {folder}"

    def _extract(self, frames: np.ndarray) -> np.ndarray:
        raise DataError(f"backend {self.name} imports precomputed features; it takes no frames")

    def feature_files(self) -> dict[str, Path]:
        if not self.features_dir.is_dir():
            raise DataError(f"precomputed features folder {self.features_dir} not found "
                            f"(backend.{self.name}.features_dir)")
        files: dict[str, Path] = {}
        for path in sorted(self.features_dir.iterdir()):
            if path.suffix in FEATURE_SUFFIXES:
                if path.stem in files:
                    raise DataError(f"{self.features_dir}: both {files[path.stem].name} and "
                                    f"{path.name}; keep one file per video")
                files[path.stem] = path
        return files

    def extract_videos(self, frames_dir: str | os.PathLike, out_dir: str | os.PathLike,
                       batch_size: int | None = None, progress: bool = True) -> ExtractResult:
        """Check every feature file and write it as `out_dir/<stem>.npy` (no frames are read:
        `frames_dir` is unused)."""
        files = self.feature_files()
        write_arrays(out_dir, self._checked(files, progress))
        return ExtractResult(videos=len(files), cache_hits=0,
                             info={**self.describe(), "videos": len(files)})

    def _checked(self, files: dict[str, Path], progress: bool
                 ) -> Iterator[tuple[str, np.ndarray]]:
        rows = None
        for stem, path in tqdm(files.items(), desc=f"import {self.name}", unit="video",
                               disable=not progress):
            array = read_feature_file(path)
            if self.feature_dim == 0:
                self.feature_dim = array.shape[1]
            if array.shape[1] != self.feature_dim:
                raise DataError(f"{path}: {array.shape[1]} values per row, expected "
                                f"{self.feature_dim} (backend.{self.name}.dim or the first file)")
            if rows is None:
                rows = array.shape[0]
            if array.shape[0] != rows:
                raise DataError(f"{path}: {array.shape[0]} rows, but other videos have {rows}; "
                                "every video needs the same number of rows")
            yield stem, array

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "kind": "precomputed", "feature_dim": self.feature_dim,
                "weights": self.weights, "random_weights": False,
                "features_dir": str(self.features_dir), "input_range_matches": None}
