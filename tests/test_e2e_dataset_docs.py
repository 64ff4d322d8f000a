"""docs/datasets.md's command for each data-set layout, run as typed (#37): its files laid out at
the paths the docs name, in the layout's release format (small: the demo's clips and labels
renamed), then every line of the layout's bash block in order. Each exits 0 and every labelled
video of the parts the run uses reaches the split: the command does what the docs say."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from conftest import sh, tiny_project

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "datasets.md"


def documented_commands(heading: str) -> list[str]:
    """The commands of the first bash block under `### <heading>` in docs/datasets.md, as a user
    types them: comments dropped, continuation lines joined."""
    text = DOCS.read_text()
    section = text.split(f"### {heading}\n", 1)[1].split("\n##", 1)[0]
    block = re.search(r"^```bash\n(.*?)^```", section, flags=re.S | re.M)
    assert block, f"docs/datasets.md, '### {heading}': no bash block"
    commands = []
    for line in block.group(1).replace("\\\n", " ").splitlines():
        command = re.sub(r"\s+#.*$", "", line).strip()
        if command and not command.startswith("#"):
            commands.append(re.sub(r"\s+", " ", command))
    return commands


@pytest.fixture(scope="module")
def demo_clips(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """16 one-second demo clips with their labels and captions (MediaEval 2018 format)."""
    from vidmem.data.demo import DemoConfig, make_demo_dataset

    root = tmp_path_factory.mktemp("clips")
    latents = make_demo_dataset(root / "videos", root / "ground-truth.csv",
                                DemoConfig(n_videos=16, seconds=1.0), captions=root / "c.txt")
    return root / "videos", latents


def lay_out_mediaeval2018(project: Path, videos: Path, latents: pd.DataFrame) -> int:
    dev = project / "data" / "mediaeval2018" / "dev-set"
    shutil.copytree(videos, dev / "sources")
    (dev / "ground-truth").mkdir()
    latents[["video", "short-term_memorability", "nb_short-term_annotations",
             "long-term_memorability", "nb_long-term_annotations"]].to_csv(
        dev / "ground-truth" / "ground-truth_dev-set.csv", index=False)
    (dev / "captions").mkdir()
    (dev / "captions" / "dev-set_video-captions.txt").write_text(
        "".join(f"{v}\t{c}\n" for v, c in zip(latents.video, latents.caption, strict=True)))
    return len(latents)


def lay_out_mediaeval2020(project: Path, videos: Path, latents: pd.DataFrame) -> int:
    """`dev_scores.csv` as in the release, the clips named as the last part of their URL."""
    root = project / "data" / "mediaeval2020"
    shutil.copytree(videos, root / "videos")
    rows = [f"{i},https://example.org/clips/{v},32,12,{s:.3f},{lt:.3f}\n" for i, (v, s, lt)
            in enumerate(zip(latents.video, latents["short-term_memorability"],
                             latents["long-term_memorability"], strict=True), 1)]
    (root / "dev_scores.csv").write_text(
        "video_id,video_url,ann_1,ann_2,part_1_scores,part_2_scores\n" + "".join(rows))
    return len(latents)


def lay_out_mediaeval2021(project: Path, videos: Path, latents: pd.DataFrame) -> int:
    """The TRECVid part as released: `training_set/` (12 clips) and `dev_set/` (4), each with its
    scores, long descriptions (BOM, CRLF) and `Videos/{id:05d}.mp4`; `test_set/` with
    descriptions only."""
    root = project / "data" / "me2021-trecvid"
    parts = (("training_set", "train", range(0, 12)), ("dev_set", "dev", range(12, 16)))
    for folder, part, rows in parts:
        (root / folder / "Videos").mkdir(parents=True)
        scores, texts = [], []
        for i in rows:
            row = latents.iloc[i]
            shutil.copy(videos / row.video, root / folder / "Videos" / f"{i + 1:05d}.mp4")
            scores.append(f"{i + 1},https://example.org/{i + 1}.mp4,40,12,"
                          f"{row['short-term_memorability']:.3f},"
                          f"{row['long-term_memorability']:.3f},"
                          f"{row['short-term_memorability']:.3f},-0.001\n")
            texts.append(f"{i + 1},https://example.org/{i + 1}.mp4,{row.caption}\r\n")
        (root / folder / f"{part}_scores.csv").write_text(
            "video_id,video_url,annotations_short_term,annotations_long_term,"
            "scores_raw_short_term,scores_raw_long_term,scores_normalized_short_term,"
            "decay_alpha\n" + "".join(scores))
        (root / folder / f"{part}_text_descriptions.csv").write_bytes(
            ("\ufeffvideo_id,video_url,description\r\n" + "".join(texts)).encode())
    (root / "test_set").mkdir()
    (root / "test_set" / "test_text_descriptions.csv").write_text(
        "video_id,video_url,description\n90,https://example.org/90.mp4,a test clip\n")
    return len(latents)


def lay_out_memento10k(project: Path, videos: Path, latents: pd.DataFrame) -> int:
    """The original release: `memento_{train,val,test}_data.json`, the clips in `videos/`, the
    captions as a JSON object; the test records have no score."""
    root = project / "data" / "memento10k"
    (root / "videos").mkdir(parents=True)
    names = [f"clip{i:02d}.mp4" for i in range(len(latents))]
    for name, video in zip(names, latents.video, strict=True):
        shutil.copy(videos / video, root / "videos" / name)
    scores = dict(zip(names, latents["short-term_memorability"], strict=True))
    for part, chosen in (("train", names[:12]), ("val", names[12:]), ("test", ["t0.mp4"])):
        (root / f"memento_{part}_data.json").write_text(json.dumps(
            [{"filename": v, "url": f"https://example.org/{v}", "alpha": -0.001,
              **({"mem_score": round(float(scores[v]), 4)} if v in scores else {})}
             for v in chosen]))
    (root / "memento_captions.json").write_text(json.dumps(
        {name: [caption, f"another view, {caption}"]
         for name, caption in zip(names, latents.caption, strict=True)}))
    return len(latents)


LAYOUTS: dict[str, Callable[[Path, Path, pd.DataFrame], int]] = {
    "MediaEval 2018": lay_out_mediaeval2018,
    "MediaEval 2020 (TRECVid videos)": lay_out_mediaeval2020,
    "MediaEval 2021 (TRECVid and Memento10k parts)": lay_out_mediaeval2021,
    "Memento10k": lay_out_memento10k,
}


def test_every_layout_with_a_command_is_run_here():
    """A layout section of docs/datasets.md with a command is in LAYOUTS (a new one is run)."""
    text = DOCS.read_text()
    with_commands = [heading for heading in re.findall(r"^### (.+)$", text, flags=re.M)
                     if re.search(r"^```bash", text.split(f"### {heading}\n", 1)[1]
                                  .split("\n##", 1)[0], flags=re.M)]
    assert sorted(with_commands) == sorted(LAYOUTS)


@pytest.mark.parametrize("heading", list(LAYOUTS))
def test_a_layouts_documented_command_runs_as_typed(tmp_path, demo_clips, heading):
    videos, latents = demo_clips
    project = tiny_project(tmp_path / "project")
    labelled = LAYOUTS[heading](project, videos, latents)
    for command in documented_commands(heading):
        run = sh(["bash", "-c", command], project, check=False)
        out = run.stdout + run.stderr
        assert run.returncode == 0, f"`{command}` exited {run.returncode}:\n{out[-4000:]}"
    split = json.loads((project / "data" / "split.json").read_text())
    used = sum(len(split[part]) for part in ("train", "val", "test"))
    report = json.loads((project / "data" / "reports" / "dataset.json").read_text())
    # Every labelled clip of the parts the command trains and tests on reaches the split, and
    # the run ends with test metrics on the data set's videos (none from the demo).
    assert used == labelled, report
    assert len(split["test"]) > 0
    headline = json.loads((project / "metrics" / "test_spearman.json").read_text())
    assert headline["test_spearman"], headline
    assert list((project / "data" / "demo" / "videos").iterdir()) == []
