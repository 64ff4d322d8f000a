"""The real `dvc` CLI against a hostile data set and a damaged cache (issue: trust nothing a file
says): a FIFO named like a video never blocks `dvc repro`, and a byte flipped in a per-video
cache pack that DVC's cache shares by hard link is repaired in the output and in DVC's cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from conftest import sh, status_stages, tiny_project

pytestmark = pytest.mark.e2e


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _dvc_object(root: Path, md5: str) -> Path:
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def _frames_listing(root: Path) -> dict[str, str]:
    """data/frames as dvc.lock records it: relative path → md5."""
    lock = YAML(typ="safe").load(root / "dvc.lock")
    out = next(o for o in lock["stages"]["decode"]["outs"] if o["path"] == "data/frames")
    return {e["relpath"]: e["md5"] for e in json.loads(_dvc_object(root, out["md5"]).read_text())}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    def edit(params):
        params["data"]["videos_dir"] = "videos"  # the user's folder, not a DVC output
        params["cache"]["dir"] = ".cache/vidmem"  # per-video packs, hard-linked into outputs

    root = tiny_project(tmp_path_factory.mktemp("integrity"), edit)
    sh(["dvc", "repro", "demo_data"], root)
    shutil.copytree(root / "data/demo/videos", root / "videos")
    os.mkfifo(root / "videos" / "video9999.webm")  # named like a video
    return root


def test_a_fifo_in_the_videos_folder_is_reported_and_dvc_repro_finishes(project):
    run = sh(["dvc", "repro"], project, timeout=600)
    assert "video9999.webm not opened: video9999.webm: a FIFO (named pipe)" in run.stdout
    report = json.loads((project / "data/reports/decode.json").read_text())
    skipped = {s["video"]: s["reason"] for s in report["skipped"]}
    assert "FIFO" in skipped["video9999.webm"], skipped
    n_videos = len(list((project / "data/demo/videos").iterdir()))
    assert report["counts"]["videos_decoded"] == n_videos
    manifest = json.loads((project / "data/inputs.json").read_text())
    assert len(manifest["videos"]["files"]) == n_videos
    status = sh(["dvc", "status"], project, timeout=300).stdout
    # Only the scan stage, which DVC runs every time, is listed.
    assert status_stages(status) == {"scan"} and "always changed" in status, status


def test_a_flipped_byte_in_a_shared_pack_is_repaired_in_the_output_and_in_dvcs_cache(project):
    listing = _frames_listing(project)
    shard = next(name for name in sorted(listing) if name.endswith(".tar"))
    path = project / "data/frames" / shard
    dvc_copy = _dvc_object(project, listing[shard])
    # One inode: the per-video pack, the output's shard and DVC's cache object.
    pack = next(p for p in (project / ".cache/vidmem").rglob("packs/*.tar")
                if p.stat().st_ino == path.stat().st_ino)
    assert dvc_copy.stat().st_ino == pack.stat().st_ino
    damaged_inode = pack.stat().st_ino
    os.chmod(pack, 0o644)  # read-only, as DVC's cache files: the damage comes from outside
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(data)
    assert _md5(path) != listing[shard]  # the three copies are damaged together

    run = sh(["dvc", "repro"], project, timeout=600)
    assert "Running stage 'decode'" in run.stdout
    # DVC finds its object damaged and drops it (where it does not, vidmem deletes it:
    # test_integrity); vidmem wrote a new pack instead of linking the damaged one.
    assert pack.stat().st_ino != damaged_inode and _md5(pack) == listing[shard]
    # The output holds the recorded bytes again, and so does DVC's cache.
    assert _frames_listing(project) == listing
    for name, md5 in listing.items():
        assert _md5(project / "data/frames" / name) == md5, name
        assert _md5(_dvc_object(project, md5)) == md5, name
    assert "Running stage 'normalize" not in run.stdout  # same bytes: nothing downstream re-ran


def test_no_captions_is_a_plain_exp_run(project):
    """`data.captions: null` once crashed DVC (a dependency `${data.captions}` resolving to
    null, `assert p`); the stages now depend on the scan's manifest, where it is `null`."""
    sh(["dvc", "exp", "run", "-S", "data.captions=null", "-S", "backends=[efficientnet_lite0]",
        "-S", "~chains.captions"], project, timeout=600)
    manifest = json.loads((project / "data/inputs.json").read_text())
    assert manifest["captions"] is None
    metrics = json.loads((project / "metrics/eval/fusion.json").read_text())
    assert set(metrics["weights"]) == {"efficientnet_lite0"}
    counts = json.loads((project / "data/reports/dataset.json").read_text())["counts"]
    assert "videos_without_caption" not in counts
