"""TF-Hub image feature-vector modules (default: Inception V3, 2048-d).

params.yaml, `backend.<name>`:
    kind: tfhub
    handle: https://tfhub.dev/google/imagenet/inception_v3/feature_vector/5
            (a URL needs the network once; a local SavedModel directory works offline, and
             downloads are cached in $TFHUB_CACHE_DIR)
    frames_per_batch: 32
    input: {size: 299, resize: squash, interpolation: bilinear, value: {range: [0, 1]}}

TF-Hub image modules expect RGB in [0, 1] (the Inception module maps it to [-1, 1] itself).
The reference run fed (x-128)/128 instead, and lost a third of its Spearman. Such a mismatch
shows up as `input_range_matches: false` in the features' info.json.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidmem.backends._tf_import import import_tensorflow, tensorflow_numerics
from vidmem.backends.base import Backend
from vidmem.core.errors import ParamsError, VidmemError
from vidmem.core.params import required_str
from vidmem.video.geometry import InputSpec

DEFAULT_HANDLE = "https://tfhub.dev/google/imagenet/inception_v3/feature_vector/5"


@dataclass(frozen=True)
class TFHubConfig:
    """`backend.<name>` for `kind: tfhub`."""

    handle: str

    @classmethod
    def from_section(cls, section: dict[str, Any], where: str) -> TFHubConfig:
        handle = required_str(section.get("handle", DEFAULT_HANDLE), f"{where}.handle",
                              "a URL or a folder")
        if "://" not in handle and not os.path.isdir(handle):
            raise ParamsError(f"TF-Hub module folder {handle} not found ({where}.handle)")
        return cls(handle=handle)


class TFHubModule(Backend):
    """A TF-Hub image feature-vector module loaded with `hub.KerasLayer`."""

    expected_range = (0.0, 1.0)

    def __init__(self, name: str, spec: InputSpec, config: dict[str, Any],
                 cache_root: str | os.PathLike | None = None) -> None:
        super().__init__(name, spec, config, cache_root)
        handle = TFHubConfig.from_section(config, f"backend.{name}").handle
        tf = import_tensorflow()
        self.numerics = tensorflow_numerics(tf)
        import tensorflow_hub as hub

        try:
            self.layer = hub.KerasLayer(handle, trainable=False)
        except Exception as exc:  # noqa: BLE001 - hub raises many types for an unreachable handle
            raise VidmemError(
                f"could not load TF-Hub module {handle!r} ({type(exc).__name__}: {exc}). Offline, "
                "download it once elsewhere and point the handle at the SavedModel folder, or "
                "set TFHUB_CACHE_DIR to a cache that holds it") from exc
        self.tf = tf
        probe = self.layer(tf.zeros((1, spec.height, spec.width, 3), tf.float32))
        self.feature_dim = int(probe.shape[-1])
        self.weights = f"TF-Hub module {handle}"

    def _extract(self, frames: np.ndarray) -> np.ndarray:
        scale = np.asarray(self.spec.scale, np.float32)
        offset = np.asarray(self.spec.offset, np.float32)
        x = frames.astype(np.float32) * scale + offset  # NHWC, as TF-Hub image modules take
        return self.layer(self.tf.constant(x)).numpy()
