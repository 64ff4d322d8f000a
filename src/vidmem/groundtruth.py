"""MediaEval 2018 ground truth and captions: read, validate, report.

Format (as published, possibly with a UTF-8 BOM):
    video,short-term_memorability,nb_short-term_annotations,long-term_memorability,nb_long-term_annotations
    video10.webm,0.950,34,0.900,10
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vidmem.errors import DataError
from vidmem.files import safe_child

COLUMNS = [
    "video",
    "short-term_memorability",
    "nb_short-term_annotations",
    "long-term_memorability",
    "nb_long-term_annotations",
]
SCORE_COLUMNS = ["short-term_memorability", "long-term_memorability"]


@dataclass
class GroundTruth:
    """Validated labels indexed by video file name, plus the rows that were dropped and why."""

    table: pd.DataFrame
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def videos(self) -> list[str]:
        return list(self.table.index)

    def scores(self, videos: list[str], target: str) -> np.ndarray:
        missing = [v for v in videos if v not in self.table.index]
        if missing:
            raise DataError(f"no ground-truth '{target}' for {len(missing)} video(s), "
                            f"e.g. {missing[:3]}")
        return self.table.loc[videos, target].to_numpy(dtype=np.float32)


def read_ground_truth(path: str | os.PathLike, on_bad_input: str = "skip") -> GroundTruth:
    """Read and check a ground-truth CSV.

    Structural problems (unreadable file, missing columns, duplicate or unsafe video names) always
    raise DataError: no policy can make them safe. Rows with a missing or out-of-range score are
    dropped and reported when `on_bad_input` is 'skip', and raise when it is 'fail'.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"ground-truth file {path} not found: check 'data.ground_truth' in "
                        "params.yaml (for the demo, run `dvc repro` to create it)")
    try:
        table = pd.read_csv(path, encoding="utf-8-sig", dtype={"video": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in ("video", *SCORE_COLUMNS) if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected the MediaEval 2018 header "
                        f"{','.join(COLUMNS)}")
    names = table["video"]
    if names.isna().any():
        rows = [int(i) + 2 for i in np.flatnonzero(names.isna().to_numpy())]
        raise DataError(f"{path}: empty video name on line(s) {rows[:10]}")
    for name in names:
        safe_child(".", name, what=f"video name in {path}")
    duplicated = sorted(set(names[names.duplicated()]))
    if duplicated:
        raise DataError(f"{path}: duplicate video name(s) {duplicated[:10]}: each video must have "
                        "exactly one row; remove or merge the duplicates")
    skipped: list[dict[str, str]] = []
    keep = np.ones(len(table), dtype=bool)
    for column in SCORE_COLUMNS:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() | (values < 0) | (values > 1)
        for i in np.flatnonzero(bad.to_numpy()):
            value = table[column].iloc[i]
            # The plain Python value: a NumPy scalar's repr would read 'np.float64(nan)'.
            value = value.item() if isinstance(value, np.generic) else value
            reason = f"{column} is {value!r}, expected a number in [0, 1]"
            if on_bad_input == "fail":
                raise DataError(f"{path}, line {i + 2} ({names.iloc[i]}): {reason}; fix the row "
                                "or set data.on_bad_input: skip to drop such rows")
            if keep[i]:
                skipped.append({"video": names.iloc[i], "stage": "ground_truth", "reason": reason})
            keep[i] = False
        table[column] = values
    table = table[keep].set_index("video")
    return GroundTruth(table=table, skipped=skipped)


def read_captions(path: str | os.PathLike) -> dict[str, str]:
    """Read `video10.webm<TAB>words-joined-by-dashes` lines into {video: 'words joined by spaces'}."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"captions file {path} not found: check 'data.captions' in params.yaml")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file ({exc})") from exc
    captions: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r\n")
        if not line:
            continue
        video, sep, words = line.partition("\t")
        if not sep:
            raise DataError(f"{path}, line {number}: expected 'video<TAB>caption'")
        safe_child(".", video, what=f"video name in {path}")
        if video in captions:
            raise DataError(f"{path}, line {number}: duplicate caption for {video}")
        captions[video] = words.replace("-", " ")
    return captions
