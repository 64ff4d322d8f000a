"""The data set a run reads (`open_dataset`: its layout, labels and captions) and which videos it
trains and tests on: labelled, decoded, and accounted for."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

from vidmem.core.errors import DataError
from vidmem.core.files import read_json
from vidmem.core.params import DataConfig
from vidmem.data.groundtruth import GroundTruth, read_captions, read_ground_truth


class Dataset:
    """The data set params.yaml's `data` section names, read through its layout (`data.format`).
    Stages, predict and benchmarks use this, not the keys: each key is read when first needed
    (so a stage depends on the keys it uses), the labels once."""

    def __init__(self, data: DataConfig) -> None:
        self.data = data

    @functools.cached_property
    def labels(self) -> GroundTruth:
        """The validated labels (`data.ground_truth`, `data.on_bad_input`)."""
        return read_ground_truth(self.data.ground_truth, self.data.on_bad_input, self.data.format)

    def captions(self) -> dict[str, str | list[str]]:
        """{video: caption(s)} from `data.captions`."""
        if self.data.captions is None:
            raise DataError("data.captions is null: this run has no captions (set it to the "
                            "data set's captions file or folder)")
        return read_captions(self.data.captions, self.data.format)

    def used_videos(self, decode_report: str | os.PathLike) -> DatasetReport:
        """The labelled videos the decode stage's report says are usable (`DatasetReport`)."""
        return dataset_from_reports(self.labels, decode_report, self.data.on_bad_input)


def open_dataset(data: DataConfig) -> Dataset:
    return Dataset(data)


@dataclass
class DatasetReport:
    """Every video the run will use, and every one it dropped with the reason (and the data
    set's own split, where it defines one)."""

    videos: list[str]
    skipped: list[dict[str, str]] = field(default_factory=list)
    official: dict[str, list[str]] | None = None
    dataset: str = "mediaeval2018"
    # The data set's own parts, each with its counts ({"train": {"labelled": n, "used": n}, ...,
    # "withheld": {"videos": n}}): every part found is reported, none dropped silently.
    parts: dict[str, dict[str, int]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        by_stage: dict[str, int] = {}
        for item in self.skipped:
            key = f"skipped_{item['stage']}"
            by_stage[key] = by_stage.get(key, 0) + 1
        return {"videos_used": len(self.videos), "videos_skipped": len(self.skipped), **by_stage}


def labelled_videos(ground_truth: GroundTruth, decoded: list[str],
                    decode_skipped: list[dict[str, str]], on_bad_input: str) -> DatasetReport:
    """Videos that have both a valid label and decoded frames, sorted by name.

    Labels without a video file and videos without a label are reported (or fatal under
    `on_bad_input: fail`): they are never silently paired with something else.
    """
    labels = set(ground_truth.videos)
    decoded_set = set(decoded)
    failed = {item["video"] for item in decode_skipped}
    skipped = list(ground_truth.skipped) + [dict(item) for item in decode_skipped
                                            if item["video"] in labels]
    without_video = sorted(labels - decoded_set - failed)
    without_label = sorted(decoded_set - labels - {s["video"] for s in ground_truth.skipped})
    if on_bad_input == "fail" and (without_video or without_label):
        raise DataError(
            f"{len(without_video)} ground-truth row(s) have no video (e.g. {without_video[:3]}) "
            f"and {len(without_label)} video(s) have no ground-truth row (e.g. "
            f"{without_label[:3]}); fix the data or set data.on_bad_input: skip")
    skipped += [{"video": v, "stage": "ground_truth", "reason": "no video file for this row"}
                for v in without_video]
    skipped += [{"video": v, "stage": "ground_truth", "reason": "video has no ground-truth row"}
                for v in without_label]
    return DatasetReport(videos=sorted(labels & decoded_set), skipped=skipped)


def dataset_from_reports(truth: GroundTruth, decode_report: str | os.PathLike,
                         on_bad_input: str) -> DatasetReport:
    """`labelled_videos` for validated labels (`read_ground_truth`) and the decode stage's JSON
    report. When the videos folder held no video at all (`features_only`), the videos are the
    ground truth's: backends that need no frames (precomputed features, captions) then have
    every video."""
    report = read_json(decode_report)
    decoded = truth.videos if report.get("features_only") else report["decoded"]
    # Official test videos whose labels are withheld are expected to have no row.
    decoded = [v for v in decoded if v not in set(truth.withheld)]
    result = labelled_videos(truth, decoded, report["skipped"], on_bad_input)
    result.dataset = truth.dataset
    if truth.official is not None:
        used = set(result.videos)
        result.official = {part: [v for v in names if v in used]
                           for part, names in truth.official.items()}
        result.parts = {part: {"labelled": len(names), "used": len(result.official[part])}
                        for part, names in truth.official.items()}
    if truth.withheld:
        result.parts["withheld"] = {"videos": len(truth.withheld)}
    return result
