"""Deterministic train/val/test split of the labelled videos."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidmem.data.dataset import DatasetReport
from vidmem.core.errors import DataError, ParamsError
from vidmem.core.params import SplitConfig

PARTS = ("train", "val", "test")


def split_sizes(n: int, config: SplitConfig) -> dict[str, int]:
    """Sizes from counts (all ≥ 1, e.g. 6000/1000/1000) or fractions (all ≤ 1, e.g. 0.75/...)."""
    sizes = (config.train, config.val, config.test)
    if all(s <= 1 for s in sizes):
        if sum(sizes) > 1 + 1e-9:
            raise ParamsError(f"split fractions {sizes} add up to more than 1")
        counts = [int(round(s * n)) for s in sizes]
        if abs(sum(sizes) - 1) < 1e-9:  # rounding must not lose or invent a video
            counts[0] = n - counts[1] - counts[2]
    else:
        if not all(float(s).is_integer() for s in sizes):
            raise ParamsError(f"split sizes {sizes}: use whole counts (6000/1000/1000) or "
                              "fractions (0.75/0.125/0.125), not a mix")
        counts = [int(s) for s in sizes]
        if sum(counts) > n:
            raise DataError(f"split asks for {sum(counts)} videos ({counts}) but only {n} "
                            "labelled videos were decoded")
    if min(counts[0], counts[1], counts[2]) < 1:
        raise DataError(f"split of {n} videos gives {dict(zip(PARTS, counts, strict=True))}: each "
                        "part needs at least one video (use more videos or other split sizes)")
    return dict(zip(PARTS, counts, strict=True))


def official_split(dataset: DatasetReport, config: SplitConfig) -> dict[str, list[str]]:
    """The data set's own train and test parts (`split.source: official`), with the validation
    part carved (seeded) from its train part: `split.val` of it as a fraction, or as a count."""
    if dataset.official is None:
        raise ParamsError(f"split.source: official, but data set {dataset.dataset} defines no "
                          "official split here (it needs the data set's folder with its parts "
                          "as data.ground_truth); use split.source: random")
    train, test = sorted(dataset.official["train"]), sorted(dataset.official["test"])
    n_val = (int(round(config.val * len(train))) if config.val <= 1 else int(config.val))
    if not train or not test or not 1 <= n_val < len(train):
        # A part whose labelled videos were all dropped (no video file, no features) is named
        # with its counts: that is a data-set folder problem, not a split.val one.
        lost = [f"the {part} part has {counts['labelled']} labelled video(s), none usable"
                for part, counts in dataset.parts.items()
                if counts.get("labelled") and not counts.get("used")]
        why = ("; ".join(lost) + ": their videos are not in data.videos_dir, which must hold "
               "every part's videos in one folder (the dropped ones are listed, with the "
               "reason, in data/reports/dataset.json)") if lost else "check split.val"
        raise DataError(f"official split of {dataset.dataset}: {len(train)} training and "
                        f"{len(test)} test videos with labels and features, validation "
                        f"{n_val}: each part needs at least one video; {why}")
    order = np.random.default_rng(config.seed).permutation(len(train))
    val = sorted(train[i] for i in order[:n_val])
    return {"train": sorted(train[i] for i in order[n_val:]), "val": val, "test": test}


def split_videos(videos: Sequence[str], config: SplitConfig) -> dict[str, list[str]]:
    """Shuffle the sorted video names with the seed and cut them into train/val/test.

    Sorting first makes the split depend only on the set of videos and the seed, not on the
    order of rows in a CSV or of files on disk.
    """
    ordered = sorted(videos)
    if len(set(ordered)) != len(ordered):
        raise DataError("duplicate video names given to the split")
    sizes = split_sizes(len(ordered), config)
    permutation = np.random.default_rng(config.seed).permutation(len(ordered))
    shuffled = [ordered[i] for i in permutation]
    result: dict[str, list[str]] = {}
    start = 0
    for part in PARTS:
        result[part] = sorted(shuffled[start:start + sizes[part]])
        start += sizes[part]
    return result
