"""How DVC's own commands scale with the number of files in one stage output: `dvc commit`,
`dvc status` (nothing changed) and `dvc checkout` (output deleted) on a directory output of N
per-video files (the layout before shards), against an output of the same N videos written by
the stages' shard writer (vidmem.store.shards: about N / 128 shards plus index.json)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from bench.harness import WORK, timed

PER_VIDEO_BYTES = 20_000  # small on purpose: the cost measured is per file, not per byte


def _dvc(args: list[str], cwd: Path) -> None:
    subprocess.run(["dvc", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "DVC_NO_ANALYTICS": "1"})


def time_layout(root: Path, videos: int, size: int, sharded: bool) -> dict:
    """A DVC repo whose stage writes `videos` videos of `size` bytes into one output folder,
    one file each or in shards."""
    from vidmem.store.shards import write_arrays

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    _dvc(["init", "-q"], root)
    _dvc(["config", "cache.type", "hardlink,copy"], root)
    out = root / "out"
    out.mkdir()
    rng = np.random.default_rng(0)
    arrays = ((f"video{i}", rng.integers(0, 256, size - 128, np.uint8)) for i in range(videos))
    if sharded:
        write_arrays(out, arrays)
    else:
        for stem, array in arrays:
            np.save(out / f"{stem}.npy", array)
    files = len(os.listdir(out))
    (root / "dvc.yaml").write_text("stages:\n  make:\n    cmd: 'true'\n    outs:\n      - out\n")
    commit_s, _ = timed(_dvc, ["commit", "-f", "-q"], root)
    status_s, _ = timed(_dvc, ["status", "-q"], root)
    shutil.rmtree(out)
    checkout_s, _ = timed(_dvc, ["checkout", "-q"], root)
    assert len(os.listdir(out)) == files
    return {"files": files, "commit_s": round(commit_s, 2), "status_s": round(status_s, 2),
            "checkout_s": round(checkout_s, 2)}


def bench_dvc_layout(args: argparse.Namespace) -> dict:
    results = {}
    for videos in args.layout_videos:
        per_video = time_layout(WORK / "dvc_layout", videos, PER_VIDEO_BYTES, sharded=False)
        sharded = time_layout(WORK / "dvc_layout", videos, PER_VIDEO_BYTES, sharded=True)
        results[str(videos)] = {"one_file_per_video": per_video, "shards": sharded}
        print(videos, results[str(videos)], flush=True)
    shutil.rmtree(WORK / "dvc_layout", ignore_errors=True)
    return {"bytes_per_video": PER_VIDEO_BYTES, "per_videos": results,
            "max_files_per_output_per_1000_videos": max(
                r["shards"]["files"] / int(n) * 1000 for n, r in results.items())}
