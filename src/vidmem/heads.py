"""Non-sequence heads: ridge and RBF support-vector regression (scikit-learn) on one vector per
video (mean-pooled frame features, or caption TF-IDF), with the regularisation strength picked by
validation Spearman only (the test split is never seen)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.svm import SVR

from vidmem.errors import ParamsError
from vidmem.metrics import spearman

HEADS = ("ridge", "svr")
# Regularisation grids: ridge's alpha (larger: smoother), SVR's C (larger: less regularised).
GRIDS = {"ridge": [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
         "svr": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]}


def mean_pooled(features: np.ndarray) -> np.ndarray:
    """[videos, frames, dim] → [videos, dim]: one vector per video for the non-sequence heads."""
    return features.mean(axis=1) if features.ndim == 3 else features


def _model(kind: str, strength: float) -> Any:
    if kind == "ridge":
        return Ridge(alpha=strength)
    return SVR(kernel="rbf", C=strength, epsilon=0.01, gamma="scale")


@dataclass
class FittedHead:
    kind: str
    model: Any
    strength: float  # the chosen alpha (ridge) or C (svr)
    val_spearman: float
    grid: dict[float, float] = field(default_factory=dict)  # strength → validation Spearman

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(self.model.predict(x), dtype=np.float64)


def fit_head(kind: str, x_train: Any, y_train: np.ndarray, x_val: Any, y_val: np.ndarray,
             grid: list[float] | None = None) -> FittedHead:
    """Fit `kind` for each strength in the grid on the training rows; keep the one with the best
    validation Spearman."""
    if kind not in HEADS:
        raise ParamsError(f"unknown head {kind!r}: use one of {list(HEADS)} (or lstm)")
    best: FittedHead | None = None
    scores: dict[float, float] = {}
    for strength in grid or GRIDS[kind]:
        model = _model(kind, strength).fit(x_train, y_train)
        score = spearman(y_val, model.predict(x_val))
        scores[strength] = score
        if best is None or (not math.isnan(score) and
                            (math.isnan(best.val_spearman) or score > best.val_spearman)):
            best = FittedHead(kind, model, strength, score)
    best.grid = scores
    return best
