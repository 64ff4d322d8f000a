"""Evaluation metrics: Spearman (the MediaEval metric), Pearson, MSE, bootstrap CI."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

BOOTSTRAP_CHUNK = 2_000_000  # resampled values held at once (about 100 MB of work arrays)


def spearman(true: np.ndarray, predicted: np.ndarray) -> float:
    """Spearman rank correlation; NaN when either side is constant (e.g. a collapsed model)."""
    if len(true) < 2 or np.ptp(true) == 0 or np.ptp(predicted) == 0:
        return math.nan
    return float(stats.spearmanr(true, predicted).statistic)


def regression_metrics(true: np.ndarray, predicted: np.ndarray, bootstrap_resamples: int = 1000,
                       seed: int = 0) -> dict[str, float | int | None]:
    true = np.asarray(true, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    result: dict[str, float | int | None] = {
        "spearman": spearman(true, predicted),
        "pearson": math.nan,
        "mse": float(np.mean((true - predicted) ** 2)),
        "n": int(len(true)),
        "spearman_ci95_low": None,
        "spearman_ci95_high": None,
    }
    if len(true) >= 2 and np.ptp(true) > 0 and np.ptp(predicted) > 0:
        result["pearson"] = float(stats.pearsonr(true, predicted).statistic)
    if bootstrap_resamples > 0 and len(true) >= 3 and not math.isnan(result["spearman"]):
        low, high = bootstrap_spearman_ci(true, predicted, bootstrap_resamples, seed)
        result["spearman_ci95_low"], result["spearman_ci95_high"] = low, high
    # JSON has no NaN: None shows as missing in `dvc metrics`, instead of breaking the file.
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.items()}


def bootstrap_spearman_ci(true: np.ndarray, predicted: np.ndarray, resamples: int = 1000,
                          seed: int = 0, level: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile bootstrap CI of Spearman over videos resampled with replacement.

    Resamples whose true or predicted values are all tied (possible on tiny test sets) have no
    Spearman and are left out; with fewer than half usable, the interval is (None, None).
    """
    rng = np.random.default_rng(seed)
    # Resamples in chunks of about BOOTSTRAP_CHUNK values, so memory stays bounded whatever the
    # test set's size (the generator gives the same stream as one big draw: same CI).
    chunk = max(1, BOOTSTRAP_CHUNK // max(1, len(true)))
    rhos, denominators = [], []
    for start in range(0, resamples, chunk):
        rows = rng.integers(0, len(true), size=(min(chunk, resamples - start), len(true)))
        true_ranks = stats.rankdata(true[rows], axis=1)
        pred_ranks = stats.rankdata(predicted[rows], axis=1)
        true_ranks -= true_ranks.mean(axis=1, keepdims=True)
        pred_ranks -= pred_ranks.mean(axis=1, keepdims=True)
        denominators.append(np.sqrt((true_ranks**2).sum(axis=1) * (pred_ranks**2).sum(axis=1)))
        rhos.append((true_ranks * pred_ranks).sum(axis=1))
    denominator = np.concatenate(denominators)
    usable = denominator > 0
    if usable.sum() < resamples / 2:
        return None, None
    rho = np.concatenate(rhos)[usable] / denominator[usable]
    tail = (1 - level) / 2 * 100
    return float(np.percentile(rho, tail)), float(np.percentile(rho, 100 - tail))
