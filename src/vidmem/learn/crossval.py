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
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vidmem.core.errors import DataError, ParamsError
from vidmem.core.files import video_key
from vidmem.learn.metrics import regression_metrics, spearman

PARTS = ("train", "val", "test")


def kfold_splits(videos: Sequence[str], folds: int, seed: int, val_fraction: float = 0.125,
                 test_parts: Sequence[Sequence[str]] | None = None) -> list[dict[str, list[str]]]:
    """`folds` train/val/test splits of `videos`: fold k tests on part k, and its validation part
    is `val_fraction` of the rest (seeded), its training part what remains. The parts are
    `test_parts` when given (folds from a file: `read_fold_file`), else the sorted names shuffled
    with `seed` and cut into `folds` near-equal parts. Every video is in exactly one test part.
    Like `split_videos`, the result depends only on the set of names and the seed."""
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
    if test_parts is None:
        rng = np.random.default_rng(seed)
        shuffled = [ordered[i] for i in rng.permutation(len(ordered))]
        parts = [shuffled[k::folds] for k in range(folds)]
    else:
        parts = [sorted(part) for part in test_parts]  # the file's row order does not matter
        placed = sorted(v for part in parts for v in part)
        if len(parts) != folds or placed != ordered:
            raise DataError(f"the test parts hold {len(placed)} videos in {len(parts)} folds; "
                            f"expected each of the {len(ordered)} videos in exactly one of "
                            f"{folds} folds")
    splits = []
    for k in range(folds):
        rest = [v for j, part in enumerate(parts) if j != k for v in part]
        order = np.random.default_rng([seed, k]).permutation(len(rest))
        n_val = max(1, int(round(val_fraction * len(rest))))
        val = [rest[i] for i in order[:n_val]]
        train = [rest[i] for i in order[n_val:]]
        splits.append({"train": sorted(train), "val": sorted(val), "test": sorted(parts[k])})
    return splits


def official_fold_parts(official: dict[str, list[str]] | None, dataset: str,
                        folds: int) -> list[list[str]]:
    """The test parts of the folds from a data set's own parts (`cv.source: official`): fold 0
    tests on its official test part (as the official split does), fold 1 on its training part."""
    if official is None:
        raise ParamsError(f"cv.source: official, but data set {dataset} defines no official "
                          "parts here (MediaEval 2021 and Memento10k do, read from the data "
                          "set's folder: data.ground_truth); use the seeded folds or "
                          "cv.folds_file")
    if folds != len(official):
        raise ParamsError(f"cv.source: official gives {len(official)} folds (the data set's "
                          f"parts {sorted(official)}), but cv.folds lists {folds}: set "
                          "`-S 'cv.folds=[0,1]'`")
    return [sorted(official["test"]), sorted(official["train"])]


def read_fold_file(path: str | os.PathLike, videos: Sequence[str], folds: int,
                   on_bad_input: str = "skip") -> tuple[list[list[str]], list[str]]:
    """The test part of each fold from a `video,fold` CSV (folds numbered 0..folds-1, as the
    field's protocols publish them), for the run's `videos` (named by file name or by stem), and
    the videos the file gives no fold: left out of cross-validation under `on_bad_input: skip`,
    an error under `fail`. Rows for videos the run does not use are ignored."""
    path = Path(path)
    try:
        table = pd.read_csv(path, encoding="utf-8-sig", dtype={"video": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc}); cv.folds_file needs a "
                        "`video,fold` CSV") from exc
    if not {"video", "fold"} <= set(table.columns):
        raise DataError(f"{path}: expected the columns video,fold (cv.folds_file), found "
                        f"{list(table.columns)}")
    by_name = {v: v for v in videos} | {video_key(v): v for v in videos}
    duplicated = sorted(set(table.video[table.video.duplicated()]))
    if duplicated:
        raise DataError(f"{path}: video(s) {duplicated[:5]} have more than one fold")
    fold_of = pd.to_numeric(table.fold, errors="coerce")
    bad = table.video[fold_of.isna() | (fold_of < 0) | (fold_of >= folds) | (fold_of % 1 != 0)]
    if len(bad):
        raise DataError(f"{path}: fold of {list(bad[:5])} is not one of 0..{folds - 1} "
                        f"(cv.folds lists {folds} folds)")
    parts: list[list[str]] = [[] for _ in range(folds)]
    for name, fold in zip(table.video, fold_of.astype(int), strict=True):
        if name in by_name:
            parts[fold].append(by_name[name])
    placed = {v for part in parts for v in part}
    missing = sorted(set(videos) - placed)
    if missing and on_bad_input == "fail":
        raise DataError(f"{path} gives no fold to {len(missing)} video(s), e.g. {missing[:3]}; "
                        "add them or set data.on_bad_input: skip (they are then left out of "
                        "cross-validation)")
    empty = [k for k, part in enumerate(parts) if not part]
    if empty:
        raise DataError(f"{path}: fold(s) {empty} hold none of this run's videos")
    return parts, missing


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
