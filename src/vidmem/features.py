"""Running a backend over every video (extract) and packing the results (concat)."""

from __future__ import annotations

import os
import shutil
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vidmem.backends.base import Backend
from vidmem.cache import ItemCache
from vidmem.errors import DataError
from vidmem.files import atomic_path, load_npy

EXTRACT_VERSION = 2  # 2: cache entries carry the fed value range
INFO_FILE = "info.json"
BOTTLENECK_SUFFIX = ".jpg_inception_v3.txt"


def format_bottleneck(values: np.ndarray) -> str:
    """retrain.py's bottleneck text: comma-joined floats on one line, no trailing newline
    (plain floats: the repr of a NumPy scalar would print 'np.float32(...)')."""
    return ",".join(str(float(v)) for v in values)


def parse_bottleneck(text: str, dim: int | None = None) -> np.ndarray | None:
    """The values of a bottleneck file, or None if it is truncated or not all floats."""
    try:
        values = np.array([float(v) for v in text.split(",")], np.float32)
    except ValueError:
        return None
    return values if dim is None or len(values) == dim else None


def copy_video_bottlenecks(out_dir: Path, stem: str, sources: Sequence[Path]) -> None:
    """A folder `<stem>/` holding one bottleneck text file per frame
    (`frame000.jpg_inception_v3.txt`, ...), copied from the backend's per-frame cache: the same
    bytes, without formatting 2,048 floats a second time (1.4 ms a frame). Copies, not the hard
    links ItemCache uses for large frame arrays: these files are small, and a text file is easy to
    edit in place (a test does), which through a link would silently alter the cache."""
    folder = out_dir / stem
    folder.mkdir(exist_ok=True)
    for k, source in enumerate(sources):
        shutil.copyfile(source, folder / f"frame{k:03d}{BOTTLENECK_SUFFIX}")


def read_video_features(features_dir: Path, stem: str) -> np.ndarray:
    """float32 [frames, dim] from `<stem>.npy` or from the bottleneck files in `<stem>/`."""
    path = features_dir / f"{stem}.npy"
    if path.exists():
        return load_npy(path)
    folder = features_dir / stem
    files = sorted(folder.glob(f"*{BOTTLENECK_SUFFIX}")) if folder.is_dir() else []
    if not files:
        raise DataError(f"{features_dir}: no features for {stem}; re-run the extract stage")
    rows = []
    for file in files:
        row = parse_bottleneck(file.read_text())
        if row is None or (rows and len(row) != len(rows[0])):
            raise DataError(f"{file}: truncated or corrupt bottleneck file; re-run the extract "
                            "stage (`dvc repro -f -s extract@<backend>`)")
        rows.append(row)
    return np.stack(rows)


def feature_stems(features_dir: str | os.PathLike) -> list[str]:
    """Stems of the videos that have features in an extract output, sorted."""
    features_dir = Path(features_dir)
    return sorted(p.stem if p.suffix == ".npy" else p.name for p in features_dir.iterdir()
                  if p.suffix == ".npy" or p.is_dir())


def item_files(directory: str | os.PathLike) -> list[Path]:
    """The per-video `.npy` files of a stage output, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory} not found: run the stage that makes it first (`dvc repro`)")
    return sorted(p for p in directory.iterdir() if p.suffix == ".npy")


def _prefetch(paths: Sequence[Path], depth: int) -> Iterator[tuple[Path, np.ndarray]]:
    """Load files in a background thread, at most `depth` ahead, so disk I/O overlaps compute and
    memory stays bounded by the lookahead, not by the data set."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: deque[tuple[Path, Future]] = deque()
        queue = iter(paths)
        for path in queue:
            pending.append((path, pool.submit(load_npy, path)))
            if len(pending) >= depth:
                break
        while pending:
            path, future = pending.popleft()
            next_path = next(queue, None)
            if next_path is not None:
                pending.append((next_path, pool.submit(load_npy, next_path)))
            yield path, future.result()


@dataclass
class ExtractResult:
    videos: int
    cache_hits: int
    info: dict[str, Any]


def extract_features(normalized_dir: str | os.PathLike, out_dir: str | os.PathLike,
                     backend: Backend, batch_size: int = 64,
                     cache_root: str | os.PathLike | None = None,
                     progress: bool = True) -> ExtractResult:
    """Features for every video in `normalized_dir` → `out_dir/<stem>.npy` (float32 [frames, dim]),
    or `out_dir/<stem>/` bottleneck text files for TF-for-Poets backends.

    Frames of several videos share a batch, so small videos do not mean small batches. Videos
    whose (normalized frames, backend config) were seen before come from the cache.
    """
    out_dir = Path(out_dir)
    if not backend.uses_frames:  # precomputed features: checked and copied, no frames needed
        count = backend.import_features(out_dir, progress)
        return ExtractResult(videos=count, cache_hits=0, info={**backend.describe(), "videos": count})
    files = item_files(normalized_dir)
    # Keyed by the resolved input spec (not its spelling in params: a preset name and its
    # mapping are the same input) and the rest of the backend's config.
    config = {k: v for k, v in backend.config.items() if k != "input"}
    # TF-for-Poets backends keep their own per-frame bottleneck cache instead.
    cache = ItemCache(None if backend.bottleneck_files else cache_root, f"extract/{backend.name}",
                      {"version": EXTRACT_VERSION, "backend": config,
                       "spec": backend.spec.to_dict(), "numerics": backend.numerics})
    todo: list[tuple[Path, str]] = []
    for path in files:
        digest = cache.key(path)
        facts = cache.fetch(digest, out_dir / path.name)
        if facts is None:
            todo.append((path, digest))
        else:
            backend.record_range(*facts["fed_range"])
    digests = dict(todo)

    buffer: list[tuple[Path, np.ndarray]] = []  # videos whose frames wait in the batch
    buffered_frames = 0

    def flush() -> None:
        nonlocal buffer, buffered_frames
        if not buffer:
            return
        batch = np.concatenate([frames for _, frames in buffer])
        if len(batch) < batch_size:
            # Always run full-size batches (zero frames pad the last one): the same shapes give
            # the same kernels, so a video's features do not depend on which videos share its
            # batch, and an incremental run matches a full one.
            padding = np.zeros((batch_size - len(batch), *batch.shape[1:]), batch.dtype)
            batch = np.concatenate([batch, padding])
        features = backend.extract(batch)
        start = 0
        for path, frames in buffer:
            video_features = features[start:start + len(frames)]
            # The values fed for this video's real frames (padding excluded), kept with the
            # cached features so a cache hit reports the same range as fresh work.
            fed_range = backend.spec.fed_range(frames)
            backend.record_range(*fed_range)
            if backend.bottleneck_files:
                copy_video_bottlenecks(out_dir, path.stem,
                                       backend.batch_files[start:start + len(frames)])
            else:
                cache.store(digests[path], video_features, out_dir / path.name,
                            {"fed_range": list(fed_range)})
            start += len(frames)
        buffer, buffered_frames = [], 0

    bar = tqdm(total=len(files), initial=len(files) - len(todo), desc=f"extract {backend.name}",
               unit="video", disable=not progress)
    for path, frames in _prefetch([p for p, _ in todo], depth=8):
        if buffer and buffered_frames + len(frames) > batch_size:
            flush()
        buffer.append((path, frames))
        buffered_frames += len(frames)
        bar.update(1)
    flush()
    bar.close()
    info = backend.describe()
    info["videos"] = len(files)
    return ExtractResult(videos=len(files), cache_hits=cache.hits, info=info)


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
