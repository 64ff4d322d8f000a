"""Data set layouts (`data.format`): one class per layout, in one registry, each reading its
labels (and official parts) and its captions; `read_ground_truth` validates the labels and
`read_captions` reads the captions through the layout `data.format` names.

MediaEval 2018's format (as published, possibly with a UTF-8 BOM):
    video,short-term_memorability,nb_short-term_annotations,long-term_memorability,nb_long-term_annotations
    video10.webm,0.950,34,0.900,10

A layout of your own is a `Layout` subclass: `@register_layout("name")` in code that is imported,
or `data.format: package.module:ClassName` (docs/contributing.md).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vidmem.core.errors import DataError, ParamsError
from vidmem.core.files import safe_child
from vidmem.core.registry import Registry

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
    """Validated labels indexed by video file name, plus the rows that were dropped and why, the
    data set's own split where it defines one, and its videos whose labels are withheld."""

    table: pd.DataFrame
    skipped: list[dict[str, str]] = field(default_factory=list)
    dataset: str = "mediaeval2018"
    official: dict[str, list[str]] | None = None  # the data set's own parts (labelled videos)
    withheld: list[str] = field(default_factory=list)  # official test videos without labels

    @property
    def videos(self) -> list[str]:
        return list(self.table.index)

    def scores(self, videos: list[str], target: str) -> np.ndarray:
        if target not in self.table.columns:
            raise DataError(f"data set {self.dataset} has no {target} scores: set "
                            f"target: {SCORE_COLUMNS[0]} (data.format: {self.dataset})")
        missing = [v for v in videos if v not in self.table.index]
        if missing:
            raise DataError(f"no ground-truth '{target}' for {len(missing)} video(s), "
                            f"e.g. {missing[:3]}")
        return self.table.loc[videos, target].to_numpy(dtype=np.float32)


def read_ground_truth(path: str | os.PathLike, on_bad_input: str = "skip",
                      data_format: str = "mediaeval2018") -> GroundTruth:
    """Read and check the labels of a data set in the layout `data_format` names.

    Structural problems (unreadable file, missing columns, duplicate or unsafe video names) always
    raise DataError: no policy can make them safe. Rows with a missing or out-of-range score are
    dropped and reported when `on_bad_input` is 'skip', and raise when it is 'fail'.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"ground-truth file {path} not found: check 'data.ground_truth' in "
                        "params.yaml (for the demo, run `dvc repro` to create it)")
    table, official, withheld = create_layout(data_format).labels(path)
    truth = _validate(table, path, on_bad_input)
    truth.dataset, truth.withheld = data_format, withheld
    if official is not None:
        kept = set(truth.videos)
        truth.official = {part: [v for v in names if v in kept] for part, names in official.items()}
    return truth


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, encoding="utf-8-sig", dtype={"video": str, "video_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    table.columns = [str(c).strip() for c in table.columns]
    return table


def _require(table: pd.DataFrame, path: Path, columns: list[str], layout: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected the {layout} header "
                        f"{','.join(columns)} (check data.format)")


Parsed = tuple[pd.DataFrame, dict[str, list[str]] | None, list[str]]


def _read_mediaeval2018(path: Path) -> Parsed:
    """MediaEval 2018/2019 and VideoMem: one CSV, `video,short-term_memorability,...`."""
    table = _read_csv(path)
    _require(table, path, ["video", *SCORE_COLUMNS], "MediaEval 2018")
    return table, None, []


def trecvid_name(video_id: Any) -> str:
    """MediaEval 2021's video file for an id: `Videos/{id:05d}.mp4`."""
    return f"{int(video_id):05d}.mp4"


def _read_mediaeval2020(path: Path) -> Parsed:
    """`dev_scores.csv`: video_id,video_url,ann_1,ann_2,part_1_scores,part_2_scores; part 1 is
    short-term, part 2 long-term. The videos are distributed by URL: each file is named as the
    last part of its URL."""
    table = _read_csv(path)
    _require(table, path, ["video_id", "video_url", "ann_1", "ann_2", "part_1_scores",
                           "part_2_scores"], "MediaEval 2020")
    return pd.DataFrame({
        "video": [str(url).rsplit("/", 1)[-1] for url in table.video_url],
        SCORE_COLUMNS[0]: table.part_1_scores, "nb_short-term_annotations": table.ann_1,
        SCORE_COLUMNS[1]: table.part_2_scores, "nb_long-term_annotations": table.ann_2}), None, []


ME2021_PARTS = {"train": "train", "dev": "test"}  # the data set's part -> vidmem's split part
# The folders of each part as the MediaEval 2021 release names them (`training_set/`, `dev_set/`,
# `test_set/`), then the variants seen in copies of it (PicSOM's `developemnt_set/`).
ME2021_FOLDERS = {"train": ("training_set", "train_set"),
                  "dev": ("dev_set", "development_set", "developemnt_set"),
                  "test": ("test_set", "testing_set")}
SCORE_FILES = "*_scores.csv"
DESCRIPTION_FILES = "*_text_descriptions.csv"


def me2021_parts(path: Path) -> dict[str, list[Path]]:
    """The part folders of a MediaEval 2021 data set folder, by part ("train", "dev", "test"):
    every folder of a known name (a copy merged from two sources can hold `dev_set/` with the
    descriptions and `developemnt_set/` with the scores)."""
    found: dict[str, list[Path]] = {}
    for part, names in ME2021_FOLDERS.items():
        folders = [path / name for name in names if (path / name).is_dir()]
        if folders:
            found[part] = folders
    return found


def _missing_part(path: Path, part: str) -> DataError:
    others = sorted(p.name for p in path.iterdir() if p.is_dir())
    return DataError(
        f"{path}: no {part} part: looked for a folder named {' or '.join(ME2021_FOLDERS[part])} "
        f"holding a {SCORE_FILES} with scores, found folders {others}; point data.ground_truth "
        "at the data set's folder as released (training_set/, dev_set/, test_set/) or rename "
        "the part's folder to one of those names")


def _read_mediaeval2021(path: Path) -> Parsed:
    """The MediaEval 2021 release's folder (or one scores CSV), TRECVid or Memento10k part:
    `training_set/train_scores.csv` and `dev_set/dev_scores.csv` with video_id[, video_url],
    annotations_short_term[, annotations_long_term], scores_raw_short_term
    [, scores_raw_long_term], scores_normalized_short_term, decay_alpha; `test_set/` with
    descriptions (and ids) only. Short-term is the normalized score (the task's official one),
    long-term the raw one where it exists. Test scores are withheld: the official split trains
    on training and tests on dev; the test part's videos are only predicted."""
    if not path.is_dir():
        frame, _ = _scores_2021(_read_csv(path), path)
        if frame is None:
            raise DataError(f"{path}: no score columns (scores_normalized_short_term or "
                            "scores_raw_short_term): point data.ground_truth at a part's "
                            "*_scores.csv or at the data set's folder")
        return frame, None, []
    folders = me2021_parts(path)
    frames, official, withheld = [], {}, []
    for part in ("train", "dev"):
        scores = [file for folder in folders.get(part, []) for file in sorted(folder.glob(SCORE_FILES))]
        if not scores:
            raise _missing_part(path, part)
        frame, names = _scores_2021(_read_csv(scores[0]), scores[0])
        if frame is None:
            raise DataError(f"{scores[0]}: no score columns (scores_normalized_short_term or "
                            "scores_raw_short_term); the training and dev parts need them")
        frames.append(frame)
        official[ME2021_PARTS[part]] = names
    if "test" in folders:  # ids only: from a scores file without scores, else the descriptions
        for file in [*(f for d in folders["test"] for f in sorted(d.glob(SCORE_FILES))),
                     *(f for d in folders["test"] for f in sorted(d.glob(DESCRIPTION_FILES)))][:1]:
            table = _read_csv(file)
            _require(table, file, ["video_id"], "MediaEval 2021")
            withheld = list(dict.fromkeys(trecvid_name(v) for v in table.video_id))
    return pd.concat(frames, ignore_index=True), official, withheld


def _scores_2021(table: pd.DataFrame, file: Path) -> tuple[pd.DataFrame | None, list[str]]:
    """One part's scores table in the common columns (None: ids without scores), and its video
    names."""
    _require(table, file, ["video_id"], "MediaEval 2021")
    names = [trecvid_name(v) for v in table.video_id]
    short = table.get("scores_normalized_short_term", table.get("scores_raw_short_term"))
    if short is None:
        return None, names
    frame = pd.DataFrame({"video": names, SCORE_COLUMNS[0]: short,
                          "nb_short-term_annotations": table.get("annotations_short_term")})
    if "scores_raw_long_term" in table.columns:
        frame[SCORE_COLUMNS[1]] = table.scores_raw_long_term
        frame["nb_long-term_annotations"] = table.get("annotations_long_term")
    return frame, names


def _read_memento10k(path: Path) -> Parsed:
    """The Memento10k release: `memento_{train,val,test}_data.json`, each a list of records with
    `filename`, `mem_score` (short-term) and `alpha`; the test part has no `mem_score`. The
    official split trains on train and tests on val."""
    if not path.is_dir():
        raise DataError(f"{path}: for data.format memento10k, point data.ground_truth at the "
                        "folder with memento_{train,val,test}_data.json")
    rows, official, withheld = [], {}, []
    for part, ours in (("train", "train"), ("val", "test"), ("test", None)):
        file = path / f"memento_{part}_data.json"
        if not file.exists():
            continue
        try:
            records = json.loads(file.read_text(encoding="utf-8-sig"))
            names = [str(r["filename"]) for r in records]
        except (ValueError, TypeError, KeyError) as exc:
            raise DataError(f"{file}: expected a JSON list of records with 'filename' "
                            f"({exc})") from exc
        labelled = [(n, r.get("mem_score")) for n, r in zip(names, records, strict=True)]
        if ours is None or all(score is None for _, score in labelled):
            withheld += names
            continue
        rows += [{"video": n, SCORE_COLUMNS[0]: score} for n, score in labelled]
        official[ours] = names
    if not rows:
        raise DataError(f"{path}: no memento_train_data.json or memento_val_data.json with "
                        "mem_score (data.format: memento10k)")
    return pd.DataFrame(rows), official if len(official) == 2 else None, withheld


def _validate(table: pd.DataFrame, path: Path, on_bad_input: str) -> GroundTruth:
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
    for column in [c for c in SCORE_COLUMNS if c in table.columns]:
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


def read_captions(path: str | os.PathLike,
                  data_format: str = "mediaeval2018") -> dict[str, str | list[str]]:
    """{video: caption} in the layout `data_format` names; a video with several descriptions
    (MediaEval 2021, Memento10k) maps to their list."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"captions file {path} not found: check 'data.captions' in params.yaml")
    return create_layout(data_format).captions(path)


def _read_tab_captions(path: Path) -> dict[str, str | list[str]]:
    """MediaEval 2018's captions: `video<TAB>words-joined-by-dashes`, a line per video."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file ({exc})") from exc
    captions: dict[str, str | list[str]] = {}
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


def _read_descriptions_2021(path: Path) -> dict[str, str | list[str]]:
    """`{part}_text_descriptions.csv` of one file or of every part of a MediaEval 2021 folder,
    as released: long (`video_id[,video_url],description`, a row per description: TRECVid) or
    wide (`video_id,description_0,...,description_4`, a row per video: Memento10k)."""
    if path.is_dir():
        files = [file for folders in me2021_parts(path).values() for folder in folders
                 for file in sorted(folder.glob(DESCRIPTION_FILES))]
    else:
        files = [path]
    captions: dict[str, list[str]] = {}
    for file in files:
        table = _read_csv(file)
        wide = sorted((c for c in table.columns if re.fullmatch(r"description_\d+", c)),
                      key=lambda c: int(c.rsplit("_", 1)[1]))
        columns = ["description"] if "description" in table.columns else wide
        if "video_id" not in table.columns or not columns:
            raise DataError(f"{file}: expected video_id with description (a row per "
                            "description) or description_0, description_1, ... (a row per "
                            f"video), found columns {list(table.columns)}")
        for column in columns:
            for video_id, text in zip(table.video_id, table[column], strict=True):
                if isinstance(text, str) and text.strip():
                    captions.setdefault(trecvid_name(video_id), []).append(text.strip())
    if not captions:
        looked = "" if not path.is_dir() else (
            f" (looked in {sorted(f.name for fs in me2021_parts(path).values() for f in fs)})")
        raise DataError(f"{path}: no {DESCRIPTION_FILES} with descriptions{looked}")
    return dict(captions)


def _read_memento_captions(path: Path) -> dict[str, str | list[str]]:
    """A JSON object from each video (its file name, or its name without extension) to its
    captions: a list of strings, or a record with a `captions` list."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
        captions = {}
        for key, value in data.items():
            texts = value.get("captions") if isinstance(value, dict) else value
            texts = [texts] if isinstance(texts, str) else [str(t) for t in texts]
            name = key if Path(key).suffix else f"{key}.mp4"
            safe_child(".", name, what=f"video name in {path}")
            captions[name] = texts
    except (ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"{path}: expected a JSON object from each video to its captions "
                        f"({exc})") from exc
    return captions


# --- the layouts ------------------------------------------------------------------------------

class Layout:
    """One data set layout: its labels with the data set's own parts (`labels`: the table in
    the common columns, {part: videos} or None, the test videos whose labels are withheld) and
    its captions ({video: caption or list of captions})."""

    name = ""

    def labels(self, path: Path) -> Parsed:
        raise NotImplementedError

    def captions(self, path: Path) -> dict[str, str | list[str]]:
        raise DataError(f"captions for data.format {self.name} are not supported: set "
                        "data.captions: null and list no caption backend")


# Layouts by name (`data.format`), as backends and heads are; README "Using your own data"
# cites each source.
LAYOUTS: Registry[None] = Registry("data set layout")


def register_layout(name: str) -> Any:
    def add(cls: type[Layout]) -> type[Layout]:
        cls.name = name
        return LAYOUTS.register(name, None)(cls)
    return add


def list_layouts() -> list[str]:
    return LAYOUTS.names()


def create_layout(name: str) -> Layout:
    """The layout `data.format` names: a registered one, or `package.module:ClassName`."""
    layout = LAYOUTS.resolve(name, Layout, "data.format")()
    layout.name = layout.name or name
    return layout


@register_layout("mediaeval2018")
class MediaEval2018(Layout):
    """MediaEval 2018/2019: one scores CSV, a tab-separated captions file."""

    def labels(self, path: Path) -> Parsed:
        return _read_mediaeval2018(path)

    def captions(self, path: Path) -> dict[str, str | list[str]]:
        return _read_tab_captions(path)


@register_layout("videomem")
class VideoMem(MediaEval2018):
    """VideoMem (Cohendet et al. 2019): MediaEval 2018's files."""


@register_layout("mediaeval2020")
class MediaEval2020(Layout):
    """MediaEval 2020's `dev_scores.csv`; its descriptions name videos by id (not read yet)."""

    def labels(self, path: Path) -> Parsed:
        return _read_mediaeval2020(path)

    def captions(self, path: Path) -> dict[str, str | list[str]]:
        raise DataError("captions for data.format mediaeval2020 are not supported yet: its "
                        "descriptions file names videos by id, not by file; set data.captions: "
                        "null and list no caption backend")


@register_layout("mediaeval2021")
class MediaEval2021(Layout):
    """The MediaEval 2021 release as published (training_set/, dev_set/, test_set/)."""

    def labels(self, path: Path) -> Parsed:
        return _read_mediaeval2021(path)

    def captions(self, path: Path) -> dict[str, str | list[str]]:
        return _read_descriptions_2021(path)


@register_layout("memento10k")
class Memento10k(Layout):
    """Memento10k: memento_{train,val,test}_data.json and a captions JSON."""

    def labels(self, path: Path) -> Parsed:
        return _read_memento10k(path)

    def captions(self, path: Path) -> dict[str, str | list[str]]:
        return _read_memento_captions(path)
