"""A network's input contract, owned here for every stage that resizes or checks frames (decode,
normalize, extract, predict): `InputSpec` (geometry and value mapping, declared per backend in
params.yaml `backend.<name>.input` or by its registry entry), `resize_frames` / `shrink_to_input`
(the geometry: size, squash or centre-crop, interpolation) and `range_matches` (whether the values
fed fit the range the weights were trained on).

- geometry is applied by decode when every listed backend has the same geometry
  (`shrink_to_input`: frames are stored at the network's input size), else by the normalize
  stage (vidmem.video.normalize), which stores each frame backend's uint8 input at its geometry;
- values (a [lo, hi] range, TF-style `(x - subtract) / divide`, or torchvision-style mean/std)
  are applied batch by batch just before the network, by `InputSpec.to_network_values`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidmem.core.errors import DataError, ParamsError
from vidmem.core.params import FrameGeometry, as_bool, as_choice, as_float, as_float_list, as_int

RESIZE_MODES = ("squash", "center_crop")
# Named value conventions, so one `dvc exp run -S backend.<b>.input.value=<name>` switches them.
VALUE_PRESETS: dict[str, dict[str, Any]] = {
    "unit_range": {"range": [0, 1]},                        # TF-Hub image modules
    "symmetric_range": {"range": [-1, 1]},                  # TF EfficientNet(-Lite) weights
    "tf_inception": {"subtract": 128, "divide": 128},       # classic Inception graph, TF-for-Poets
    "imagenet": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},  # torchvision
    "clip": {"mean": [0.48145466, 0.4578275, 0.40821073],  # OpenAI CLIP and OpenCLIP
             "std": [0.26862954, 0.26130258, 0.27577711]},
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

    def frame_geometry(self) -> FrameGeometry:
        return FrameGeometry(self.height, self.width, self.resize, self.interpolation,
                             self.antialias)

    def geometry(self) -> dict[str, Any]:
        return self.frame_geometry().geometry()

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


def resize_frames(frames: np.ndarray, spec: InputSpec | FrameGeometry) -> np.ndarray:
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


def shrink_to_input(frames: np.ndarray, spec: InputSpec | FrameGeometry) -> np.ndarray:
    """`frames` resized to the spec's geometry (`resize_frames`) when that scales them down, or
    keeps their size, in both directions; else unchanged, so stored frames never exceed the
    source resolution (the extract loader upscales such small frames, as it always did)."""
    height, width = frames.shape[1:3]
    if height >= spec.height and width >= spec.width:
        return resize_frames(frames, spec)
    return frames


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
