"""Late fusion of the chains' predictions (a chain: one head on one backend's features), with
weights fit on the validation split only.

Weights come from ensemble selection (Caruana et al., ICML 2004): start from nothing, and
`steps` times add (with replacement) the chain whose addition gives the best validation
Spearman of the average; a chain's weight is the fraction of steps that picked it. It starts
from the best single chain on validation, never needs a gradient of the rank metric, and
gives sparse, readable weights. Each chain's predictions are z-scored with their own
validation mean and standard deviation first (predictions only, no labels), since heads predict
on different scales; the fused score is then mapped back to the score scale by a least-squares
line fit on validation (increasing, so ranks and Spearman are unchanged).

The test split is used only to report the result.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vidmem.core.errors import DataError
from vidmem.learn.metrics import spearman

DEFAULT_STEPS = 20


@dataclass
class Fusion:
    weights: dict[str, float]
    val_spearman: float
    center: dict[str, float]  # validation mean of each chain's predictions
    scale: dict[str, float]  # and their standard deviation
    slope: float  # fused z-score → score units, fit on validation
    intercept: float

    def state(self) -> dict[str, object]:
        """Everything fitted, as plain numbers (`models/fusion.json`): enough to fuse new
        videos' scores (vidmem predict)."""
        return {"weights": self.weights, "val_spearman": self.val_spearman,
                "center": self.center, "scale": self.scale, "slope": self.slope,
                "intercept": self.intercept}

    @classmethod
    def from_state(cls, state: dict[str, object]) -> Fusion:
        return cls(**{key: state[key] for key in ("weights", "val_spearman", "center", "scale",
                                                  "slope", "intercept")})

    @classmethod
    def load(cls, path: str | os.PathLike, chains: list[str]) -> Fusion:
        """`models/fusion.json` for fusing `chains` (params.yaml's), every value checked:
        weights finite, ≥ 0 and summing to 1, one per chain and no other; centres finite;
        scales finite and > 0; slope and intercept finite. Anything else is a DataError naming
        the file and the field, never a silently wrong or empty score."""
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path} not found: run `dvc repro` (the fusion stage writes it), "
                            "or score one chain with --chain")
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not readable JSON ({exc}); re-run `dvc repro`") from exc

        def bad(field: str, why: str) -> DataError:
            return DataError(f"{path}: '{field}' {why}; re-run `dvc repro` to write it anew")

        if not isinstance(state, dict):
            raise bad("(top level)", f"is a {type(state).__name__}, not an object")
        if state.get("chains") != chains:
            raise bad("chains", f"is {state.get('chains')!r}, but params.yaml's chains are "
                                f"{chains}")

        def number(field: str, value: object) -> float:
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value):
                raise bad(field, f"is {value!r}, not a finite number")
            return float(value)

        tables = {}
        for key in ("weights", "center", "scale"):
            table = state.get(key)
            if not isinstance(table, dict) or set(table) != set(chains):
                raise bad(key, f"must map exactly the chains {chains}, got "
                               f"{sorted(table)[:10] if isinstance(table, dict) else table!r}")
            tables[key] = {name: number(f"{key}.{name}", table[name]) for name in chains}
        for name in chains:
            if tables["weights"][name] < 0:
                raise bad(f"weights.{name}", f"is {tables['weights'][name]}, below 0")
            if tables["scale"][name] <= 0:
                raise bad(f"scale.{name}", f"is {tables['scale'][name]}, not above 0")
        if not math.isclose(sum(tables["weights"].values()), 1.0, abs_tol=1e-6):
            raise bad("weights", f"sum to {sum(tables['weights'].values())}, not 1")
        return cls(weights=tables["weights"], center=tables["center"], scale=tables["scale"],
                   val_spearman=state.get("val_spearman", math.nan),
                   slope=number("slope", state.get("slope")),
                   intercept=number("intercept", state.get("intercept")))

    def predict(self, predictions: dict[str, np.ndarray]) -> np.ndarray:
        fused = sum(w * (predictions[name] - self.center[name]) / self.scale[name]
                    for name, w in self.weights.items() if w > 0)
        return self.intercept + self.slope * np.asarray(fused, dtype=np.float64)


def fit_fusion(val_predictions: dict[str, np.ndarray], val_true: np.ndarray,
               steps: int = DEFAULT_STEPS, bags: int = 0, seed: int = 0) -> Fusion:
    """Fusion weights from validation predictions and labels only. `bags` > 0: bagged
    ensemble selection, the weights averaged over that many selections, each on a bootstrap
    resample of the validation videos (seeded), so that a few validation videos cannot decide
    a weight alone."""
    names = list(val_predictions)
    if not names:
        raise DataError("no chain predictions to fuse")
    center = {n: float(np.mean(val_predictions[n])) for n in names}
    scale = {n: float(np.std(val_predictions[n])) or 1.0 for n in names}
    z = np.stack([(val_predictions[n] - center[n]) / scale[n] for n in names])
    val_true = np.asarray(val_true)
    if bags > 0:
        rng = np.random.default_rng(seed)
        resamples = [rng.integers(0, len(val_true), len(val_true)) for _ in range(bags)]
        counts = np.mean([_selection_counts(z[:, rows], val_true[rows], steps)
                          for rows in resamples], axis=0)
    else:
        counts = _selection_counts(z, val_true, steps)
    weights = {n: float(c) / steps for n, c in zip(names, counts, strict=True)}
    fused = sum(weights[n] * z[i] for i, n in enumerate(names))
    slope, intercept = np.polyfit(fused, val_true, 1) if np.std(fused) > 0 else (0.0, 0.0)
    if slope <= 0:  # keep the map increasing, so it never reverses the ranks
        slope, intercept = 1e-12, float(np.mean(val_true))
    return Fusion(weights, spearman(val_true, fused), center, scale, float(slope),
                  float(intercept))


def _selection_counts(z: np.ndarray, true: np.ndarray, steps: int) -> np.ndarray:
    """Forward selection with replacement over the rows of `z` (chains x videos, z-scored):
    how many of `steps` picked each chain."""
    counts = np.zeros(len(z))
    total = np.zeros(z.shape[1])
    for _ in range(steps):
        best, best_score = 0, -math.inf  # constant predictions everywhere: the first chain
        for i in range(len(z)):  # ties go to the earlier chain in `chains`: deterministic
            score = spearman(true, total + z[i])
            if not math.isnan(score) and score > best_score:
                best, best_score = i, score
        counts[best] += 1
        total = total + z[best]
    return counts


def fuse_split_table(table: pd.DataFrame, names: list[str]) -> tuple[Fusion, pd.DataFrame]:
    """Fit the fusion on the `val` rows of a `read_split_predictions` table (their predictions
    and labels, nothing else) and fuse its `test` rows: the fitted fusion, and the test rows
    with the fused score as `predicted`."""
    val, test = table[table.split == "val"], table[table.split == "test"]
    fusion = fit_fusion({n: val[n].to_numpy() for n in names}, val.true.to_numpy())
    return fusion, test.assign(predicted=fusion.predict({n: test[n].to_numpy() for n in names}))


def read_split_predictions(paths: dict[str, str]) -> tuple[pd.DataFrame, dict[str, bool]]:
    """One table of `split, video, true, <chain>...` from each chain's evaluate output (val and
    test rows), checked to hold the same videos with the same labels; and whether each chain's
    features came from random weights."""
    table, random_weights = None, {}
    for name, path in paths.items():
        part = pd.read_csv(path)
        random_weights[name] = bool(part.get("random_weights", pd.Series([False])).any())
        part = part[["split", "video", "true", "predicted"]].rename(columns={"predicted": name})
        if table is None:
            table = part
            continue
        merged = table.merge(part, on=["split", "video"], how="outer", suffixes=("", "_other"),
                             indicator=True)
        if (merged["_merge"] != "both").any() or not np.allclose(merged.true, merged.true_other):
            raise DataError(f"{path} does not predict the same videos (or labels) as the other "
                            "chains: re-run `dvc repro` so every evaluate uses the same split")
        table = merged.drop(columns=["true_other", "_merge"])
    return table.sort_values(["split", "video"], ignore_index=True), random_weights
