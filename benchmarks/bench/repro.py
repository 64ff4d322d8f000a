"""`dvc repro` in this repo with nothing to do, and an incremental run: decode →
extract (`vidmem.app.pipeline.features_for_videos`) after adding 1% more videos, with the per-video
cache, vs the full run and vs a from-scratch run."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path

from bench.harness import ROOT, WORK, bench_params, load_backend, timed
from bench.videos import folder_of, make_videos


def bench_noop_repro() -> dict:
    """An up-to-date pipeline: `dvc status` lists only the scan stage, which DVC runs every
    time (`always_changed`), and `dvc repro` runs it alone."""
    status = subprocess.run(["dvc", "status", "--json"], cwd=ROOT, capture_output=True,
                            text=True)
    changed = set(json.loads(status.stdout or "{}")) if status.returncode == 0 else {"?"}
    if not changed <= {"scan"}:  # timing a real run here would take minutes and change the workspace
        return {"seconds": None, "was_up_to_date": False, "stages_run": None,
                "note": "skipped: the pipeline is not up to date; run `dvc repro` first"}
    seconds, result = timed(subprocess.run, ["dvc", "repro"], cwd=ROOT, capture_output=True,
                            text=True)
    return {"seconds": round(seconds, 2), "was_up_to_date": True,
            "stages_run": re.findall(r"Running stage '([^']+)'", result.stdout)}


def front_half(args: argparse.Namespace, videos_dir: Path, out: Path, backend: str,
               cache: Path | None) -> tuple[float, Path]:
    """Seconds for decode → extract of every video in `videos_dir`, and the
    features folder."""
    from vidmem.app.pipeline import features_for_videos

    params = bench_params(args, cache)
    load_backend(params, backend)  # offline: random weights for timing, in params from now on
    shutil.rmtree(out, ignore_errors=True)
    seconds, made = timed(features_for_videos, videos_dir, out, params, backend, False)
    return seconds, made.features_dir


def bench_incremental(args: argparse.Namespace, videos: list[Path], backend: str) -> dict:
    from vidmem.store.features import open_features

    cache = WORK / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    extra = make_videos(args, WORK / "videos", len(videos), max(1, len(videos) // 100))
    base_dir = folder_of(videos, WORK / "incremental_base")
    grown_dir = folder_of(videos + extra, WORK / "incremental_grown")
    full_s, _ = front_half(args, base_dir, WORK / "full", backend, cache)
    incremental_s, incremental = front_half(args, grown_dir, WORK / "incremental", backend, cache)
    _, scratch = front_half(args, grown_dir, WORK / "scratch", backend, None)  # the reference
    grown, reference = open_features(incremental), open_features(scratch)
    identical = grown.stems() == reference.stems() and all(
        grown.load(stem).tobytes() == reference.load(stem).tobytes()
        for stem in reference.stems())
    # Shards are a function of the videos' names and bytes: the same files either way.
    same_files = all((incremental / p.name).read_bytes() == p.read_bytes()
                     for p in scratch.iterdir() if p.name != "info.json")
    return {"backend": backend, "videos": len(videos), "added": len(extra),
            "full_s": round(full_s, 2),
            "incremental_s": round(incremental_s, 2),
            "incremental_over_full": round(incremental_s / full_s, 3),
            "features_identical_to_scratch": identical,
            "shards_identical_to_scratch": same_files}
