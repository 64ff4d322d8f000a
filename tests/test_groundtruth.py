import pandas as pd
import pytest

from vidmem.core.errors import DataError
from vidmem.data.dataset import labelled_videos
from vidmem.data.groundtruth import COLUMNS, read_captions, read_ground_truth

from conftest import TEST_DATA

HEADER = ",".join(COLUMNS)


def write(tmp_path, text, name="gt.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_real_mediaeval_dev_set_with_bom():
    gt = read_ground_truth(TEST_DATA / "mediaeval2018" / "ground-truth_dev-set.csv")
    assert len(gt.videos) == 8000 and not gt.skipped
    assert gt.table.loc["video10.webm", "short-term_memorability"] == pytest.approx(0.950)
    assert gt.table["long-term_memorability"].between(0, 1).all()


def test_real_captions_match_the_ground_truth():
    captions = read_captions(TEST_DATA / "mediaeval2018" / "dev-set_video-captions.txt")
    assert captions["video10.webm"] == "couple relaxing on picnic crane shot"
    gt = read_ground_truth(TEST_DATA / "mediaeval2018" / "ground-truth_dev-set.csv")
    assert set(captions) == set(gt.videos)


def test_missing_columns_are_named(tmp_path):
    path = write(tmp_path, "video,short-term_memorability\nvideo1.webm,0.5\n")
    with pytest.raises(DataError, match="long-term_memorability"):
        read_ground_truth(path)


def test_duplicate_names_fail(tmp_path):
    path = write(tmp_path, f"{HEADER}\nvideo1.webm,0.5,30,0.5,9\nvideo1.webm,0.6,30,0.5,9\n")
    with pytest.raises(DataError, match="duplicate.*video1.webm"):
        read_ground_truth(path)


@pytest.mark.parametrize("name", ["../x.webm", "/etc/passwd", "sub/video1.webm", ".."])
def test_names_escaping_the_data_folder_fail(tmp_path, name):
    path = write(tmp_path, f"{HEADER}\n{name},0.5,30,0.5,9\n")
    with pytest.raises(DataError, match="escapes the data folder|plain file name"):
        read_ground_truth(path)


def test_non_ascii_names_are_fine(tmp_path):
    path = write(tmp_path, f"{HEADER}\nvidéo_été.webm,0.5,30,0.5,9\n")
    assert read_ground_truth(path).videos == ["vidéo_été.webm"]


def test_nan_and_out_of_range_scores_skip_and_report_or_fail(tmp_path):
    path = write(tmp_path, f"{HEADER}\nvideo1.webm,0.5,30,0.5,9\nvideo2.webm,,30,0.5,9\n"
                           "video3.webm,1.5,30,0.5,9\nvideo4.webm,0.7,30,oops,9\n")
    gt = read_ground_truth(path, "skip")
    assert gt.videos == ["video1.webm"]
    assert [s["video"] for s in gt.skipped] == ["video2.webm", "video3.webm", "video4.webm"]
    with pytest.raises(DataError, match="line 3 \\(video2.webm\\)"):
        read_ground_truth(path, "fail")


def test_labels_and_videos_that_do_not_match_are_reported(tmp_path):
    path = write(tmp_path, f"{HEADER}\nvideo1.webm,0.5,30,0.5,9\nvideo2.webm,0.6,30,0.5,9\n"
                           "video3.webm,0.7,30,0.5,9\n")
    gt = read_ground_truth(path)
    report = labelled_videos(gt, ["video1.webm", "video9.webm"],
                             [{"video": "video3.webm", "stage": "decode", "reason": "corrupt"}],
                             "skip")
    assert report.videos == ["video1.webm"]
    reasons = {s["video"]: s["reason"] for s in report.skipped}
    assert reasons == {"video3.webm": "corrupt", "video2.webm": "no video file for this row",
                       "video9.webm": "video has no ground-truth row"}
    assert report.counts()["videos_skipped"] == 3
    with pytest.raises(DataError, match="no video"):
        labelled_videos(gt, ["video1.webm", "video9.webm"], [], "fail")


def test_scores_refuse_unknown_videos(tmp_path):
    gt = read_ground_truth(write(tmp_path, f"{HEADER}\nvideo1.webm,0.5,30,0.4,9\n"))
    assert gt.scores(["video1.webm"], "long-term_memorability").tolist() == [pytest.approx(0.4)]
    with pytest.raises(DataError, match="video2.webm"):
        gt.scores(["video2.webm"], "short-term_memorability")


def test_demo_ground_truth_round_trips(tmp_path):
    from vidmem.data.demo import DemoConfig, demo_latents

    table = demo_latents(DemoConfig(n_videos=5))[COLUMNS]
    table.to_csv(tmp_path / "gt.csv", index=False)
    gt = read_ground_truth(tmp_path / "gt.csv")
    assert gt.videos == list(table.video)
    pd.testing.assert_series_equal(gt.table["short-term_memorability"].reset_index(drop=True),
                                   table["short-term_memorability"], check_names=False)
