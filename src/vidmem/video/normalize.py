"""The normalize stage's engine: each frame backend's network input, stored at its geometry
(uint8, decode's storage format), and the values the network will be fed checked against the
range its weights expect, before any network runs.

When decode already stored the frames at a backend's geometry (the default: one shared input
geometry), normalize's output is decode's files, linked: no second copy on disk or in DVC's cache.

Getting the value range wrong fails silently and costs a lot of accuracy (the reference TF-Hub run
fed (x-128)/128 to a module that expects [0,1]), so backends declare the range their weights were
trained with, the normalize stage checks the mapped values against it before any network runs
(`input_range_matches` in metrics/normalize/<backend>.json, the statistics in
data/reports/normalize/<backend>.json), and extraction records what it actually fed.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidmem.core.devices import host_threads
from vidmem.core.files import atomic_dir, link_or_copy
from vidmem.store.cache import SHA256, Entry, EntryStore, ItemCache, PackWriter, open_cache
from vidmem.store.engine import Todo, VideoResult, run_per_video
from vidmem.store.framestore import FrameFormat
from vidmem.store.shards import ShardReader, write_shards
from vidmem.video.geometry import InputSpec, range_matches, resize_frames

_LEVELS = np.arange(256, dtype=np.int64)
_SQUARES = _LEVELS * _LEVELS


class ValueStats:
    """Per-channel minimum, maximum, mean and standard deviation of uint8 RGB frames, from
    integer sums per video (exact at any data set's pixel count), merged in any order."""

    def __init__(self) -> None:
        self.count = 0
        self.total = [0, 0, 0]
        self.squares = [0, 0, 0]
        self.low = [255, 255, 255]
        self.high = [0, 0, 0]

    @classmethod
    def of(cls, frames: np.ndarray) -> ValueStats:
        """The sums of one video's frames, from each channel's histogram of the 256 levels
        (1.9 ms for 8 frames of 224², where int64 sums and squares of every pixel took 26 ms)."""
        stats = cls()
        pixels = frames.reshape(-1, 3)
        if len(pixels):
            stats.count = len(pixels)
            for c in range(3):
                counts = np.bincount(pixels[:, c], minlength=256)
                present = np.flatnonzero(counts)
                stats.total[c] = int(counts @ _LEVELS)
                stats.squares[c] = int(counts @ _SQUARES)
                stats.low[c], stats.high[c] = int(present[0]), int(present[-1])
        return stats

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "total": self.total, "squares": self.squares,
                "low": self.low, "high": self.high}

    @classmethod
    def merged(cls, parts: list[dict[str, Any]]) -> ValueStats:
        """All videos' stats from each video's `to_dict`."""
        stats = cls()
        for part in parts:
            if not part["count"]:
                continue
            stats.count += part["count"]
            for c in range(3):
                stats.total[c] += part["total"][c]
                stats.squares[c] += part["squares"][c]
                stats.low[c] = min(stats.low[c], part["low"][c])
                stats.high[c] = max(stats.high[c], part["high"][c])
        return stats

    def fed(self, spec: InputSpec) -> dict[str, dict[str, float]] | None:
        """Per channel (R, G, B), the min, max, mean and std of the values the network is fed:
        `spec`'s mapping of these pixels. None before any pixel."""
        if not self.count:
            return None
        mean = np.array(self.total, dtype=np.float64) / self.count
        squares = np.array(self.squares, dtype=np.float64)
        std = np.sqrt(np.maximum(squares / self.count - mean**2, 0))
        channels = {}
        for c, name in enumerate("RGB"):
            scale, offset = spec.scale[c], spec.offset[c]
            low, high = sorted((scale * self.low[c] + offset, scale * self.high[c] + offset))
            channels[name] = {"min": round(float(low), 4), "max": round(float(high), 4),
                              "mean": round(float(scale * mean[c] + offset), 4),
                              "std": round(float(abs(scale) * std[c]), 4)}
        return channels


class NormalizeWorker:
    """One frame backend's network input for chunks of videos: each video's frames resized to
    the spec's geometry, stored in the cache when that changed them (else a bytes-free marker:
    the output then holds decode's own bytes), with the value sums of what will be fed."""

    def __init__(self, frames_dir: Path, spec: InputSpec, cache: ItemCache) -> None:
        self.frames = ShardReader(frames_dir)
        self.spec = spec
        self.cache = cache

    def __call__(self, chunk: list[Todo]) -> list[VideoResult]:
        results = []
        for stem, _, digest in chunk:
            video = self.frames.load(stem)
            network_input = resize_frames(video, self.spec)
            facts = {"resized": network_input.shape != video.shape,
                     "stats": ValueStats.of(network_input).to_dict()}
            if facts["resized"]:
                self.cache.store(digest, network_input, facts)
            else:
                self.cache.entries.write(digest, b"", facts)
            results.append(VideoResult(stem, digest, facts))
        return results


class _ResizedOrDecoded(EntryStore):
    """Normalize's output entries: a resized video's own cache entry, or for a video stored at
    the geometry already (a bytes-free marker in the cache), decode's bytes."""

    def __init__(self, inner: EntryStore, frames: ShardReader, stems: dict[str, str],
                 as_decoded: set[str]) -> None:
        super().__init__(inner.where, inner.suffix)
        self.inner, self.frames, self.stems, self.as_decoded = inner, frames, stems, as_decoded
        self.makes_packs, self.slow_reads = inner.makes_packs, inner.slow_reads

    def read(self, digest: str) -> Entry | None:
        found = self.inner.read(digest)
        if found is None or digest not in self.as_decoded:
            return found
        # The marker's facts (its value sums: a later run's hit), decode's bytes.
        facts = {k: v for k, v in found[1].items() if k != SHA256}
        return self.frames.read(self.stems[digest]), facts

    def write(self, digest: str, data: bytes, facts: dict[str, Any]) -> None:
        self.inner.write(digest, data, facts)

    def pack(self, members: Sequence[tuple[str, str]], write: PackWriter,
             ) -> tuple[Path, list[dict[str, Any]]]:
        return self.inner.pack(members, write)

    def discard(self) -> None:
        self.inner.discard()


NORMALIZE_VERSION = 1


def normalize_step(frames_dir: str | os.PathLike, out_dir: str | os.PathLike, spec: InputSpec,
                   expected_range: tuple[float, float] | None, fmt: FrameFormat,
                   cache_root: str | os.PathLike | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """The normalize stage of one frame backend; returns its metrics.

    Writes every video's frames at the network's input geometry (uint8, in `fmt`, decode's
    storage format) into `out_dir`, and measures the values the network will be fed (`spec`'s
    mapping of those pixels) per channel against `expected_range`, the range its weights were
    trained on, before any network runs. It runs on the per-video engine
    (vidmem.store.engine), keyed by the decoded frames' sha256, so a re-run only works on
    videos it has not seen at this geometry.

    When decode already stored every video at this geometry (one shared input geometry, the
    default), the output's files are decode's files (hard links, else copies): the same bytes,
    so DVC's cache keeps one copy, and extract's per-video cache keys (the frames' sha256)
    do not change.
    """
    frames = ShardReader(frames_dir)
    with atomic_dir(out_dir) as out:
        cache = open_cache(cache_root, "normalize",
                           {"version": NORMALIZE_VERSION, "geometry": spec.geometry()}, fmt,
                           scratch=out / ".entries")
        results = run_per_video(
            [(stem, stem) for stem in frames.stems()], cache, out,
            key=lambda stem, _: frames.sha256(stem),
            make_worker=functools.partial(NormalizeWorker, frames.folder.absolute(), spec, cache),
            # Videos on every core, in worker processes: reading, hashing, resizing and the
            # value histograms are per-video work that holds the GIL in part (one thread took
            # 78 s for 8,000 videos on a 16-core GPU box).
            chunk_size=8, threads=host_threads(), processes=True,
            write_output=False, desc="normalize",
            progress=progress)
        as_decoded = {r.digest for r in results if not r.facts["resized"]}
        # Counted per video, not per digest: videos with the same frames share one digest.
        resized = sum(1 for r in results if r.facts["resized"])
        if resized:
            entries = _ResizedOrDecoded(cache.entries, frames,
                                        {r.digest: r.stem for r in results}, as_decoded)
            write_shards(out, [(r.stem, r.digest) for r in results], ItemCache(entries, fmt))
        else:
            if cache.packs:
                # The markers go into packs like any entry (a few files, not two per video),
                # through shards that are then dropped: the output is decode's files.
                write_shards(out / ".markers", [(r.stem, r.digest) for r in results], cache)
                shutil.rmtree(out / ".markers")
            cache.discard()
            for source in frames.folder.iterdir():
                if source.is_file():
                    link_or_copy(source, out / source.name)
    channels = ValueStats.merged([r.facts["stats"] for r in results]).fed(spec)
    observed = None if channels is None else (min(c["min"] for c in channels.values()),
                                              max(c["max"] for c in channels.values()))
    return {
        "videos": len(frames), "resized": resized, "stored_as_decoded": not resized,
        # "value_convention", not "values": DVC's metrics table answers attribute lookups with
        # columns, and tabulate takes a table with a `.values` for a DataFrame (tests/test_readme).
        "geometry": f"{spec.height}x{spec.width} {spec.resize}", "value_convention": spec.values,
        "expected_input_range": list(expected_range) if expected_range else None,
        "observed_input_range": list(observed) if observed else None,
        "input_range_matches": range_matches(observed, expected_range),
        "channels": channels,
    }
