"""Per-backend input preparation (the normalize stage): the size and value range each network
expects.

The contract has two halves, both declared per backend in params.yaml (`backend.<name>.input`):
- geometry (size, squash or centre-crop, interpolation), applied by `resize_frames`: by decode
  when every listed backend has the same geometry (`shrink_to_input`: frames are stored at the
  network's input size), else by the normalize stage (`normalize_step`), which stores each
  frame backend's uint8 input at its geometry;
- values (a [lo, hi] range, TF-style `(x - subtract) / divide`, or torchvision-style mean/std),
  applied batch by batch just before the network, by `InputSpec.to_network_values`.

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidmem.core.devices import host_threads
from vidmem.core.errors import DataError, ParamsError
from vidmem.core.files import atomic_dir, link_or_copy
from vidmem.core.params import as_bool, as_choice, as_float, as_float_list, as_int
from vidmem.store.cache import SHA256, Entry, EntryStore, ItemCache, PackWriter, open_cache
from vidmem.store.engine import Todo, VideoResult, run_per_video
from vidmem.store.framestore import FrameFormat
from vidmem.store.shards import ShardReader, write_shards

RESIZE_MODES = ("squash", "center_crop")
# Named value conventions, so one `dvc exp run -S backend.<b>.input.value=<name>` switches them.
VALUE_PRESETS: dict[str, dict[str, Any]] = {
    "unit_range": {"range": [0, 1]},                        # TF-Hub image modules
    "symmetric_range": {"range": [-1, 1]},                  # TF EfficientNet(-Lite) weights
    "tf_inception": {"subtract": 128, "divide": 128},       # classic Inception graph, TF-for-Poets
    "imagenet": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},  # torchvision
}
INTERPOLATIONS = ("bilinear", "bicubic", "area", "nearest")


@dataclass(frozen=True)
class InputSpec:
    """What a backend's network is fed: uint8 RGB at `height`x`width`, mapped per channel to
    `x * scale + offset`."""

    height: int
    width: int
    resize: str
    interpolation: str
    antialias: bool
    scale: tuple[float, float, float]
    offset: tuple[float, float, float]
    values: str  # human-readable form of the value mapping, e.g. "(x-128)/128"

    @classmethod
    def from_params(cls, section: dict[str, Any], where: str) -> InputSpec:
        """Build from a `backend.<name>.input` mapping; `where` names it in error messages."""
        if not isinstance(section, dict):
            raise ParamsError(f"params.yaml: '{where}' must be a mapping")
        size = section.get("size")
        if isinstance(size, list):
            if len(size) != 2:
                raise ParamsError(f"params.yaml: '{where}.size' must be one number or "
                                  f"[height, width], got {size!r}")
            height, width = (as_int(v, f"{where}.size", 1) for v in size)
        else:
            height = width = as_int(size, f"{where}.size", 1)
        value = section.get("value")
        if isinstance(value, str):
            if value not in VALUE_PRESETS:
                raise ParamsError(f"params.yaml: '{where}.value' = {value!r} is not one of "
                                  f"{sorted(VALUE_PRESETS)} (or use a mapping, see README)")
            value = VALUE_PRESETS[value]
        if not isinstance(value, dict) or len(value) == 0:
            raise ParamsError(f"params.yaml: '{where}.value' must be one of "
                              "{range: [lo, hi]}, {subtract: s, divide: d} or {mean: [...], std: [...]}")
        if set(value) == {"range"}:
            lo, hi = as_float_list(value["range"], f"{where}.value.range", 2)
            scale = ((hi - lo) / 255.0,) * 3
            offset = (lo,) * 3
            text = f"[{lo:g}, {hi:g}]"
        elif set(value) == {"subtract", "divide"}:
            sub = as_float(value["subtract"], f"{where}.value.subtract")
            div = as_float(value["divide"], f"{where}.value.divide")
            if div == 0:
                raise ParamsError(f"params.yaml: '{where}.value.divide' must not be 0")
            scale = (1.0 / div,) * 3
            offset = (-sub / div,) * 3
            text = f"(x-{sub:g})/{div:g}"
        elif set(value) == {"mean", "std"}:
            mean = as_float_list(value["mean"], f"{where}.value.mean", 3)
            std = as_float_list(value["std"], f"{where}.value.std", 3)
            if any(s <= 0 for s in std):
                raise ParamsError(f"params.yaml: '{where}.value.std' must be positive")
            scale = tuple(1.0 / (255.0 * s) for s in std)
            offset = tuple(-m / s for m, s in zip(mean, std, strict=True))
            text = f"(x/255-mean)/std, mean={mean}, std={std}"
        else:
            raise ParamsError(f"params.yaml: '{where}.value' has keys {sorted(value)}; use "
                              "{range: [lo, hi]}, {subtract: s, divide: d} or {mean: [...], std: [...]}")
        return cls(
            height=height, width=width,
            resize=as_choice(section.get("resize", "squash"), f"{where}.resize", RESIZE_MODES),
            interpolation=as_choice(section.get("interpolation", "bilinear"),
                                    f"{where}.interpolation", INTERPOLATIONS),
            antialias=as_bool(section.get("antialias", True), f"{where}.antialias"),
            scale=tuple(scale), offset=tuple(offset), values=text,
        )

    @property
    def value_bounds(self) -> tuple[float, float]:
        """The smallest and largest value this mapping can produce (from uint8 0 and 255)."""
        ends = [o + s * x for s, o in zip(self.scale, self.offset, strict=True) for x in (0, 255)]
        return min(ends), max(ends)

    def geometry(self) -> dict[str, Any]:
        return {"height": self.height, "width": self.width, "resize": self.resize,
                "interpolation": self.interpolation, "antialias": self.antialias}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "value_bounds": list(self.value_bounds)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        fields = {k: v for k, v in data.items() if k != "value_bounds"}
        fields["scale"] = tuple(fields["scale"])
        fields["offset"] = tuple(fields["offset"])
        return cls(**fields)

    def to_network_values(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W, 3] → float32 [B, 3, H, W] in this spec's value range (on frames' device)."""
        scale = torch.tensor(self.scale, dtype=torch.float32, device=frames.device)
        offset = torch.tensor(self.offset, dtype=torch.float32, device=frames.device)
        # The NHWC → NCHW permute is a view with channels_last strides, which .float() keeps:
        # no copy beyond the one conversion, and in-place arithmetic after it.
        x = frames.permute(0, 3, 1, 2).float()
        return x.mul_(scale.view(1, 3, 1, 1)).add_(offset.view(1, 3, 1, 1))

    def fed_range(self, frames: np.ndarray) -> tuple[float, float]:
        """Min and max of what `to_network_values` makes of uint8 [B, H, W, 3] frames, computed
        on the uint8 per-channel extremes (cheap) instead of on the float batch."""
        flat = frames.reshape(-1, 3)
        ends = [o + s * float(v) for c, (s, o) in enumerate(zip(self.scale, self.offset, strict=True))
                for v in (flat[:, c].min(), flat[:, c].max())]
        return min(ends), max(ends)


def resize_frames(frames: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 [N, H, W, 3] → uint8 [N, spec.height, spec.width, 3] by the spec's geometry.

    Bilinear, bicubic and nearest run on the uint8 frames themselves (torch's uint8 kernels,
    channels-last): 1.5 ms for 8 frames of 398×224 → 224², where a float32 round trip took
    16.7 ms, the largest cost of the extract loader. The two differ by at most one grey level
    in 0.13% of the pixels. `area` has no uint8 kernel and goes through float32.
    """
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise DataError(f"expected uint8 frames [N, H, W, 3], got {frames.dtype} {frames.shape}")
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # NCHW view, NHWC memory
    h, w = x.shape[-2:]
    if spec.resize == "center_crop":
        # Scale the short side to the target's long side, then cut the centre.
        factor = max(spec.height / h, spec.width / w)
        size = (max(spec.height, round(h * factor)), max(spec.width, round(w * factor)))
    else:
        size = (spec.height, spec.width)
    if (h, w) != size:
        if spec.interpolation == "area":
            x = F.interpolate(x.float(), size=size, mode="area")
            x = x.round().clamp(0, 255).to(torch.uint8)
        else:
            kwargs: dict[str, Any] = {}
            if spec.interpolation in ("bilinear", "bicubic"):
                kwargs = {"align_corners": False, "antialias": spec.antialias}
            x = F.interpolate(x, size=size, mode=spec.interpolation, **kwargs)
    if spec.resize == "center_crop":
        top = (x.shape[-2] - spec.height) // 2
        left = (x.shape[-1] - spec.width) // 2
        x = x[..., top:top + spec.height, left:left + spec.width]
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def shrink_to_input(frames: np.ndarray, spec: InputSpec) -> np.ndarray:
    """`frames` resized to the spec's geometry (`resize_frames`) when that scales them down, or
    keeps their size, in both directions; else unchanged, so stored frames never exceed the
    source resolution (the extract loader upscales such small frames, as it always did)."""
    height, width = frames.shape[1:3]
    if height >= spec.height and width >= spec.width:
        return resize_frames(frames, spec)
    return frames


# --- the normalize stage ----------------------------------------------------------------------

def range_matches(observed: tuple[float, float] | None, expected: tuple[float, float] | None,
                  tolerance: float = 0.05, min_coverage: float = 0.6) -> bool | None:
    """Whether values spanning `observed` fit the range `expected` by the weights (None: either
    is unknown).

    Fitting means staying inside that range (with a small margin) *and* covering most of it
    (`min_coverage`): [0, 1] fed to a network trained on [-1, 1] stays inside but is wrong,
    while real frames hold both dark and bright pixels and so span nearly all of the right range.
    """
    if expected is None or observed is None:
        return None
    lo, hi = expected
    low, high = observed
    margin = tolerance * (hi - lo)
    inside = low >= lo - margin and high <= hi + margin
    return bool(inside and (high - low) / (hi - lo) >= min_coverage)


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
            # Videos on every core: reading, hashing, resizing and the value histograms are
            # per-video work (one thread took 78 s for 8,000 videos on a 16-core GPU box).
            chunk_size=8, threads=host_threads(), write_output=False, desc="normalize",
            progress=progress)
        as_decoded = {r.digest for r in results if not r.facts["resized"]}
        resized = len(results) - len(as_decoded)
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
