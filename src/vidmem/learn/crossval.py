"""k-fold cross-validation: seeded folds, and the summary that tells a better chain from a worse
one (per-fold Spearman, mean and standard deviation, the pooled out-of-fold Spearman with its
bootstrap CI, and paired per-fold differences between chains).

One 1,000-video test split has a 95% CI of about ±0.05 on Spearman, while the differences worth
having are 0.01-0.03: those show only as paired differences over the same folds (every chain
scored on the same test videos of each fold), which is what the field does on these labels
(MeMAD 6-fold, VMemNet 8-fold, THAU-UPM 5-fold).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vidmem.core.errors import DataError, ParamsError
from vidmem.learn.metrics import regression_metrics, spearman

PARTS = ("train", "val", "test")


def kfold_splits(videos: Sequence[str], folds: int, seed: int,
                 val_fraction: float = 0.125) -> list[dict[str, list[str]]]:
    """`folds` train/val/test splits of `videos`: the sorted names shuffled with `seed` and cut
    into `folds` near-equal parts; fold k tests on part k, and its validation part is
    `val_fraction` of the rest (also seeded), its training part what remains. Every video is in
    exactly one test part. Like `split_videos`, the result depends only on the set of names and
    the seed."""
    if not isinstance(folds, int) or folds < 2:
        raise ParamsError(f"split.folds must be an integer of at least 2 (got {folds!r}); "
                          "use 0 for the single train/val/test split")
    if not 0 < val_fraction < 1:
        raise ParamsError(f"validation fraction {val_fraction} must be between 0 and 1")
    ordered = sorted(videos)
    if len(set(ordered)) != len(ordered):
        raise DataError("duplicate video names given to the folds")
    if len(ordered) < 3 * folds:
        raise DataError(f"{len(ordered)} videos are too few for {folds} folds (each fold needs "
                        "a test, validation and training video)")
    rng = np.random.default_rng(seed)
    shuffled = [ordered[i] for i in rng.permutation(len(ordered))]
    parts = [shuffled[k::folds] for k in range(folds)]
    splits = []
    for k in range(folds):
        rest = [v for j, part in enumerate(parts) if j != k for v in part]
        order = np.random.default_rng([seed, k]).permutation(len(rest))
        n_val = max(1, int(round(val_fraction * len(rest))))
        val = [rest[i] for i in order[:n_val]]
        train = [rest[i] for i in order[n_val:]]
        splits.append({"train": sorted(train), "val": sorted(val), "test": sorted(parts[k])})
    return splits


def summarize_chain(fold_true: Sequence[np.ndarray], fold_predicted: Sequence[np.ndarray],
                    bootstrap_resamples: int = 1000, seed: int = 0) -> dict[str, object]:
    """Per-fold test Spearman, their mean and standard deviation (ddof 1), and the Spearman of
    the pooled out-of-fold predictions with its bootstrap 95% CI."""
    scores = [spearman(t, p) for t, p in zip(fold_true, fold_predicted, strict=True)]
    pooled = regression_metrics(np.concatenate(fold_true), np.concatenate(fold_predicted),
                                bootstrap_resamples, seed)
    usable = [s for s in scores if not math.isnan(s)]
    # A fold whose predictions (or labels) are all tied has no Spearman: None, left out of the
    # mean and of paired differences.
    folds = [None if math.isnan(s) else round(s, 6) for s in scores]
    # The list for code; `fold_<k>` scalars for `dvc metrics show`, whose table leaves lists out.
    return {"folds": folds, **{f"fold_{k}": s for k, s in enumerate(folds)},
            "mean": round(float(np.mean(usable)), 6) if usable else None,
            "sd": round(float(np.std(usable, ddof=1)), 6) if len(usable) > 1 else None,
            "pooled_spearman": pooled["spearman"],
            "pooled_ci95_low": pooled["spearman_ci95_low"],
            "pooled_ci95_high": pooled["spearman_ci95_high"], "n": pooled["n"]}


def paired_difference(a: Sequence[float | None], b: Sequence[float | None]) -> dict[str, object]:
    """Chain a against chain b over the same folds: the per-fold differences a - b, their mean
    and standard deviation, and in how many folds a wins (over the folds where both have a
    Spearman: `folds` counts them)."""
    if len(a) != len(b):
        raise DataError("paired differences need the same folds for both chains")
    both = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None
            and not (math.isnan(x) or math.isnan(y))]
    diffs = np.asarray([x - y for x, y in both], dtype=np.float64)
    differences = [round(float(d), 6) for d in diffs]
    return {"differences": differences,
            **{f"difference_{k}": d for k, d in enumerate(differences)},
            "mean": round(float(diffs.mean()), 6) if len(diffs) else None,
            "sd": round(float(diffs.std(ddof=1)), 6) if len(diffs) > 1 else None,
            "wins": int((diffs > 0).sum()), "folds": len(diffs)}
