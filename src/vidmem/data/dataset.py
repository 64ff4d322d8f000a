"""Which videos a run trains and tests on: labelled, decoded, and accounted for."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from vidmem.core.errors import DataError
from vidmem.core.files import read_json
from vidmem.data.groundtruth import GroundTruth, read_ground_truth


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


def dataset_from_reports(ground_truth_csv: str, decode_report: str | os.PathLike,
                         on_bad_input: str, data_format: str = "mediaeval2018") -> DatasetReport:
    """`labelled_videos` for a ground-truth CSV and the decode stage's JSON report. When the
    videos folder held no video at all (`features_only`), the videos are the ground truth's:
    backends that need no frames (precomputed features, captions) then have every video."""
    report = read_json(decode_report)
    truth = read_ground_truth(ground_truth_csv, on_bad_input, data_format)
    decoded = truth.videos if report.get("features_only") else report["decoded"]
    # Official test videos whose labels are withheld are expected to have no row.
    decoded = [v for v in decoded if v not in set(truth.withheld)]
    result = labelled_videos(truth, decoded, report["skipped"], on_bad_input)
    result.dataset = data_format
    if truth.official is not None:
        used = set(result.videos)
        result.official = {part: [v for v in names if v in used]
                           for part, names in truth.official.items()}
        result.parts = {part: {"labelled": len(names), "used": len(result.official[part])}
                        for part, names in truth.official.items()}
    if truth.withheld:
        result.parts["withheld"] = {"videos": len(truth.withheld)}
    return result
