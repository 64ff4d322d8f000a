"""Readers of each memorability data set's layout, on small files written in that layout with its
quirks (BOM, several descriptions per video, no long-term scores, withheld test labels)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidmem.core.errors import DataError, ParamsError
from vidmem.core.params import SplitConfig
from vidmem.data.dataset import DatasetReport
from vidmem.data.groundtruth import read_captions, read_ground_truth
from vidmem.data.split import official_split

ME2021_SCORES = ("video_id,annotations_short_term,annotations_long_term,scores_raw_short_term,"
                 "scores_raw_long_term,scores_normalized_short_term,decay_alpha\n")


def me2021(root, with_long=True):
    """A MediaEval 2021 folder: train and dev with scores, test with ids only."""
    header = ME2021_SCORES if with_long else (
        "video_id,video_url,annotations_short_term,scores_raw_short_term,"
        "scores_normalized_short_term,decay_alpha\n")
    for part, ids in (("train", range(1, 9)), ("dev", range(9, 13))):
        folder = root / f"{part}_set"
        folder.mkdir(parents=True)
        rows = "".join((f"{i},40,12,0.{i + 40},0.{i + 60},0.{i + 50},-0.001\n" if with_long else
                        f"{i},http://x/{i}.mp4,90,0.{i + 40},0.{i + 50},-0.001\n") for i in ids)
        (folder / f"{part}_scores.csv").write_text("\ufeff" + header + rows)  # with a BOM
        (folder / f"{part}_text_descriptions.csv").write_text(
            "video_id,description\n" + "".join(f"{i},a dog runs {i}\n{i},the dog {i} jumps\n"
                                               for i in ids))
    (root / "test_set").mkdir()
    (root / "test_set" / "test_scores.csv").write_text("video_id\n13\n14\n")
    return root


def test_mediaeval2021_folder_scores_descriptions_and_official_split(tmp_path):
    truth = read_ground_truth(me2021(tmp_path / "me21"), data_format="mediaeval2021")
    assert truth.videos[:2] == ["00001.mp4", "00002.mp4"] and len(truth.videos) == 12
    # Short-term is the normalized score, long-term the raw one.
    assert truth.scores(["00001.mp4"], "short-term_memorability") == pytest.approx(0.51)
    assert truth.scores(["00001.mp4"], "long-term_memorability") == pytest.approx(0.61)
    assert truth.withheld == ["00013.mp4", "00014.mp4"]
    assert truth.official == {"train": [f"{i:05d}.mp4" for i in range(1, 9)],
                              "test": [f"{i:05d}.mp4" for i in range(9, 13)]}
    captions = read_captions(tmp_path / "me21", "mediaeval2021")
    assert captions["00003.mp4"] == ["a dog runs 3", "the dog 3 jumps"]  # several per video


def test_memento_part_of_mediaeval2021_has_no_long_term_and_says_so(tmp_path):
    truth = read_ground_truth(me2021(tmp_path / "m", with_long=False), data_format="mediaeval2021")
    with pytest.raises(DataError, match="data set mediaeval2021 has no long-term_memorability "
                                        "scores: set target: short-term_memorability"):
        truth.scores(truth.videos, "long-term_memorability")


def memento(root):
    root.mkdir()
    for part, names, scored in (("train", [f"clip{i}.mp4" for i in range(6)], True),
                                ("val", ["clip6.mp4", "clip7.mp4", "clip8.mp4"], True),
                                ("test", ["clip9.mp4"], False)):
        records = [{"filename": n, "url": f"http://x/{n}", "alpha": -0.001,
                    **({"mem_score": round(0.5 + 0.04 * k, 3)} if scored else {})}
                   for k, n in enumerate(names)]
        (root / f"memento_{part}_data.json").write_text(json.dumps(records))
    (root / "memento_captions.json").write_text(json.dumps(
        {"clip0": ["a man sings", "someone singing"], "clip1.mp4": {"captions": ["a dog"]}}))
    return root


def test_memento10k_records_withheld_test_and_captions(tmp_path):
    truth = read_ground_truth(memento(tmp_path / "memento"), data_format="memento10k")
    assert sorted(truth.videos) == sorted(f"clip{i}.mp4" for i in range(9))
    assert truth.withheld == ["clip9.mp4"]
    assert truth.scores(["clip2.mp4"], "short-term_memorability") == pytest.approx(0.58)
    assert "long-term_memorability" not in truth.table.columns
    captions = read_captions(tmp_path / "memento" / "memento_captions.json", "memento10k")
    assert captions == {"clip0.mp4": ["a man sings", "someone singing"], "clip1.mp4": ["a dog"]}


def test_mediaeval2020_scores_map_parts_to_terms_and_name_videos_by_url(tmp_path):
    (tmp_path / "dev_scores.csv").write_text(
        "video_id,video_url,ann_1,ann_2,part_1_scores,part_2_scores\n"
        "34,https://v.cdn.example/r/videos/ABC_1.mp4,13,7,0.92,0.86\n"
        "57,https://v.cdn.example/r/videos/DEF_2.mp4,12,9,1.00,0.78\n")
    truth = read_ground_truth(tmp_path / "dev_scores.csv", data_format="mediaeval2020")
    assert truth.videos == ["ABC_1.mp4", "DEF_2.mp4"]
    np.testing.assert_allclose(truth.scores(truth.videos, "long-term_memorability"), [0.86, 0.78])


def test_videomem_reads_the_mediaeval2018_layout(tmp_path):
    (tmp_path / "gt.csv").write_text(
        "\ufeffvideo,short-term_memorability,nb_short-term_annotations,long-term_memorability,"
        "nb_long-term_annotations\nvideo1.webm,0.9,30,0.8,10\n")
    assert read_ground_truth(tmp_path / "gt.csv", data_format="videomem").videos == ["video1.webm"]


def test_wrong_layout_names_the_file_and_the_format(tmp_path):
    (tmp_path / "gt.csv").write_text("video,short-term_memorability\nv.webm,0.5\n")
    with pytest.raises(DataError, match="gt.csv: missing column.*MediaEval 2020.*data.format"):
        read_ground_truth(tmp_path / "gt.csv", data_format="mediaeval2020")
    with pytest.raises(DataError, match="point data.ground_truth at the folder"):
        read_ground_truth(tmp_path / "gt.csv", data_format="memento10k")


def test_official_split_carves_validation_from_train_only(tmp_path):
    truth = read_ground_truth(memento(tmp_path / "memento"), data_format="memento10k")
    dataset = DatasetReport(videos=truth.videos, official=truth.official, dataset="memento10k")
    parts = official_split(dataset, SplitConfig(0.75, 0.34, 0.0, seed=1, source="official"))
    assert parts["test"] == ["clip6.mp4", "clip7.mp4", "clip8.mp4"]  # Memento10k's val part
    assert len(parts["val"]) == 2 and set(parts["val"]) | set(parts["train"]) == {
        f"clip{i}.mp4" for i in range(6)}
    with pytest.raises(ParamsError, match="data set mediaeval2018 defines no official split"):
        official_split(DatasetReport(videos=["a"]), SplitConfig(0.5, 0.25, 0.25, 0, "official"))


def test_an_official_part_left_without_videos_is_named():
    """#37: a data set whose dev part has labels but no video in data.videos_dir (the videos
    folder of the training part only) stops at the split naming that part, not split.val."""
    dataset = DatasetReport(videos=["a", "b", "c"], dataset="mediaeval2021",
                            official={"train": ["a", "b", "c"], "test": []},
                            parts={"train": {"labelled": 3, "used": 3},
                                   "test": {"labelled": 4, "used": 0}})
    with pytest.raises(DataError, match=r"the test part has 4 labelled video\(s\), none usable: "
                                        r"their videos are not in data.videos_dir"):
        official_split(dataset, SplitConfig(0.5, 0.34, 0.0, 0, "official"))


RELEASE = Path(__file__).parent / "data" / "mediaeval2021"


@pytest.mark.parametrize("part, videos, long_term", [("trecvid", 28, True),
                                                      ("memento10k", 28, False)])
def test_mediaeval2021_as_released_reads_every_part(part, videos, long_term):
    """The release's folder names (training_set/, dev_set/ or developemnt_set/, test_set/), its
    headers (video_url), BOMs and CRLF line ends, wide and long descriptions, and a test part
    with descriptions only: every part read, none dropped."""
    truth = read_ground_truth(RELEASE / part, data_format="mediaeval2021")
    assert len(truth.videos) == videos
    assert len(truth.official["train"]) == 20 and len(truth.official["test"]) == 8
    assert len(truth.withheld) == 4 and not set(truth.withheld) & set(truth.videos)
    assert ("long-term_memorability" in truth.table.columns) == long_term
    captions = read_captions(RELEASE / part, "mediaeval2021")
    assert set(truth.videos) | set(truth.withheld) == set(captions)
    # Long: two rows per video; wide: five columns per row.
    assert {len(texts) for texts in captions.values()} == ({2, 1} if part == "trecvid" else {5})


def test_a_missing_part_names_what_was_looked_for_and_found(tmp_path):
    import shutil

    copy = tmp_path / "me21"
    shutil.copytree(RELEASE / "trecvid", copy)
    (copy / "training_set").rename(copy / "trainingset")
    with pytest.raises(DataError, match=r"no train part: looked for a folder named training_set "
                                        r"or train_set .* found folders \['dev_set', 'test_set', "
                                        r"'trainingset'\]"):
        read_ground_truth(copy, data_format="mediaeval2021")


def test_descriptions_without_a_known_column_are_an_error_naming_them(tmp_path):
    file = tmp_path / "d.csv"
    file.write_text("video_id,text\n1,a dog\n")
    with pytest.raises(DataError, match=r"found columns \['video_id', 'text'\]"):
        read_captions(file, "mediaeval2021")


def test_a_copy_merged_from_two_sources_reads_each_parts_folders(tmp_path):
    """`dev_set/` with the descriptions (textual_scores) beside `developemnt_set/` with the
    scores (PicSOM): both are the dev part."""
    import shutil

    copy = tmp_path / "memento"
    shutil.copytree(RELEASE / "memento10k", copy)
    (copy / "dev_set").mkdir()
    (copy / "developemnt_set" / "dev_text_descriptions.csv").rename(
        copy / "dev_set" / "dev_text_descriptions.csv")
    truth = read_ground_truth(copy, data_format="mediaeval2021")
    assert len(truth.official["test"]) == 8
    assert set(truth.official["test"]) <= set(read_captions(copy, "mediaeval2021"))
