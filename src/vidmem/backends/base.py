"""The interface every feature backend implements."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from vidmem.errors import VidmemError
from vidmem.normalize import InputSpec


class Backend(ABC):
    """Turns uint8 RGB frames, already at `spec`'s size, into one feature vector per frame.

    Subclasses set `feature_dim`, `weights` (where the weights came from, in words) and
    `expected_range` (the value range the weights were trained on, or None if unknown), and
    implement `_extract`. `random_weights` must be True whenever the weights are not trained:
    it is written next to every feature file and metric so no one mistakes such a result.
    """

    feature_dim: int
    weights: str
    random_weights: bool = False
    expected_range: tuple[float, float] | None = None
    # False for backends that import features from files instead of reading frames.
    uses_frames: bool = True
    # True: the extract output holds one TF-for-Poets bottleneck text file per frame (and the
    # backend keeps its own per-frame cache) instead of one .npy per video. Such a backend sets
    # `batch_files` in each `_extract` call: the cached text file of every frame of that batch,
    # which the extract driver copies into the stage output instead of formatting it again.
    bottleneck_files: bool = False
    batch_files: list[Path]

    def __init__(self, name: str, spec: InputSpec | None, config: dict[str, Any]) -> None:
        self.name = name
        self.spec = spec
        self.config = config
        self.observed_min = math.inf
        self.observed_max = -math.inf
        # Where and in which precision the network runs ({"device": "cpu", "precision": "false"},
        # see vidmem.devices.numerics): part of the extract cache key and of info.json, since
        # the same weights give slightly different features on another device or precision.
        self.numerics: dict[str, Any] = {}

    @abstractmethod
    def _extract(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [B, H, W, 3] → float32 [B, feature_dim]."""

    def extract(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [B, H, W, 3] frames at the spec's size → float32 [B, feature_dim] features."""
        expected = (self.spec.height, self.spec.width, 3)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != expected:
            raise VidmemError(f"backend {self.name}: expected uint8 frames [B, {expected[0]}, "
                              f"{expected[1]}, 3], got {frames.dtype} {list(frames.shape)}; "
                              "re-run the normalize stage for this backend")
        features = np.asarray(self._extract(frames), dtype=np.float32)
        if features.shape != (len(frames), self.feature_dim):
            raise VidmemError(f"backend {self.name} returned features of shape "
                              f"{list(features.shape)}, expected [{len(frames)}, {self.feature_dim}]")
        if not np.isfinite(features).all():
            raise VidmemError(f"backend {self.name} produced NaN or infinite features")
        return features

    def record_range(self, low: float, high: float) -> None:
        """Note the min/max value fed to the network for one video's frames (the extract driver
        calls this per video, from the cache's facts when the video was cached, so the record is
        the same whether a run computed or reused the features)."""
        self.observed_min = min(self.observed_min, float(low))
        self.observed_max = max(self.observed_max, float(high))

    def range_matches(self, tolerance: float = 0.05, min_coverage: float = 0.6) -> bool | None:
        """Whether what was fed fits the range the weights expect (None: not known).

        Fitting means staying inside that range (with a small margin) *and* covering most of it
        (`min_coverage`): [0, 1] fed to a network trained on [-1, 1] stays inside but is wrong,
        while batches of real frames hold both dark and bright pixels and so span nearly all of
        the right range.
        """
        if self.expected_range is None or self.observed_min > self.observed_max:
            return None
        lo, hi = self.expected_range
        margin = tolerance * (hi - lo)
        inside = self.observed_min >= lo - margin and self.observed_max <= hi + margin
        coverage = (self.observed_max - self.observed_min) / (hi - lo)
        return inside and coverage >= min_coverage

    def describe(self) -> dict[str, Any]:
        """Facts stored beside the features: what produced them, and what was fed."""
        observed = None
        if self.observed_min <= self.observed_max:
            observed = [round(self.observed_min, 4), round(self.observed_max, 4)]
        return {
            "backend": self.name,
            "kind": self.config.get("kind"),
            "feature_dim": self.feature_dim,
            "weights": self.weights,
            "random_weights": self.random_weights,
            "input": self.spec.to_dict(),
            "expected_input_range": list(self.expected_range) if self.expected_range else None,
            "observed_input_range": observed,
            "input_range_matches": self.range_matches(),
            "numerics": self.numerics,
        }
