"""Queued experiments (`dvc exp run --queue` + `dvc queue start`) run in a temporary copy of the
repo, where the git-ignored per-video cache folder does not exist. They must still find it."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from conftest import sh, tiny_project, use_backends

pytestmark = pytest.mark.e2e


def test_a_queued_experiment_reuses_the_per_video_cache(tmp_path):
    def with_cache(params) -> None:
        params["cache"]["dir"] = ".cache/vidmem"
        use_backends(params, {"efficientnet_lite0": "lstm"})

    (tmp_path / "project").mkdir()
    project = tiny_project(tmp_path / "project", with_cache)
    sh(["dvc", "repro"], project)  # fills .cache/vidmem; dvc.lock is left uncommitted
    assert any(Path(project, ".cache/vidmem/extract").rglob("packs/*.tar"))
    sh(["dvc", "exp", "run", "--queue", "-S", "lr=1e-3", "-S", "decode.workers=1"], project)
    sh(["dvc", "queue", "start", "-j", "1"], project)
    deadline = time.time() + 600
    status = ""
    while time.time() < deadline:
        status = sh(["dvc", "queue", "status"], project).stdout
        if "Success" in status or "Failed" in status:
            break
        time.sleep(2)
    assert "Success" in status, status
    task = status.splitlines()[1].split()[0]
    logs = sh(["dvc", "queue", "logs", task], project).stdout
    # decode runs there (decode.workers changed, a setting that changes no frame) and takes
    # every video from the project's per-video cache; extract is restored by DVC's run cache
    # or, when it runs, takes every video from the per-video cache too.
    assert "decoded 16 video(s) (16 from cache)" in logs
    extracted = re.findall(r"extracted 16 video\(s\) with efficientnet_lite0 \((\d+) from cache", logs)
    assert all(hits == "16" for hits in extracted), extracted
    assert extracted or "Stage 'extract@efficientnet_lite0' didn't change" in logs
