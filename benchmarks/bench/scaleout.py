"""Scale-out: the same decode → extract work (`vidmem.app.pipeline.features_for_videos`,
per-video cache on, starting empty) with VIDMEM_EXECUTOR=local, and on an embedded Ray with 1 and
with 2 CPUs; plus Ray's own cost per task, measured through the executor on no-op work.

Each configuration runs in a fresh child process, so `ray.init` starts a Ray of that size and
its start-up is timed apart from the work.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
from pathlib import Path

from bench.harness import WORK, bench_params, in_child, load_backend, timed

CONFIGS = {"local": ("local", None), "ray_1": ("ray", 1), "ray_2": ("ray", 2)}
NOOP_TASKS = 500


def _digest(folder: Path) -> str:
    """One sha256 over every file of an output folder (names and bytes)."""
    total = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        total.update(str(path.relative_to(folder)).encode())
        total.update(hashlib.sha256(path.read_bytes()).digest())
    return total.hexdigest()


def phase_scaleout(args: argparse.Namespace) -> dict:
    from vidmem.app.pipeline import features_for_videos
    from vidmem.store.executor import EXECUTOR_ENV, get_executor
    from vidmem.store.shards import ShardReader

    executor, cpus = CONFIGS[args.scaleout_config]
    os.environ[EXECUTOR_ENV] = executor
    startup_s = None
    if cpus is not None:
        import ray
        import torch

        # One CPU for Ray means one thread for the model too (the thread count is part of the
        # numerics, and an extract actor asks for as many CPUs as the model runs threads).
        torch.set_num_threads(min(cpus, torch.get_num_threads()))
        startup_s, _ = timed(ray.init, num_cpus=cpus, include_dashboard=False,
                             logging_level="WARNING")
    out = WORK / f"scaleout_{args.scaleout_config}"
    cache = WORK / f"scaleout_cache_{args.scaleout_config}"
    for folder in (out, cache):
        shutil.rmtree(folder, ignore_errors=True)
    params = bench_params(args, cache)
    load_backend(params, args.backend)  # offline: random weights for timing, said so in params
    seconds, made = timed(features_for_videos, args.source, out, params, args.backend, False)
    result = {"seconds": round(seconds, 2), "startup_s": startup_s and round(startup_s, 2),
              "videos": len(ShardReader(made.features_dir)),
              "sha256": {part: _digest(out / part) for part in ("frames", "features")}}
    if cpus is not None:
        # Ray's own cost per video: one-video chunks that do nothing, through the same actors.
        noop_s, _ = timed(lambda: list(get_executor().map_chunks(
            lambda: len, [[k] for k in range(NOOP_TASKS)], {"num_cpus": 1.0})))
        result["noop_task_ms"] = round(1000 * noop_s / NOOP_TASKS, 2)
    return result


PHASES = {"scaleout": phase_scaleout}


def run_config(args: argparse.Namespace, videos_dir: Path, backend: str, name: str) -> dict:
    return in_child("scaleout", args, backend, videos_dir, extra=("--scaleout-config", name))


def bench_scaleout(args: argparse.Namespace, videos_dir: Path, backend: str) -> dict:
    """local and Ray with 2 CPUs take turns `--scaleout-turns` times (this shared machine's speed
    drifts by up to 10% within minutes) and the fastest of each counts; Ray with 1 CPU runs
    once."""
    turns: dict[str, list[dict]] = {"local": [], "ray_2": []}
    for _ in range(args.scaleout_turns):
        for name in turns:
            turns[name].append(run_config(args, videos_dir, backend, name))
    return summarize(turns, run_config(args, videos_dir, backend, "ray_1"), backend)


def summarize(turns: dict[str, list[dict]], ray_1: dict, backend: str) -> dict:
    runs = {name: min(tries, key=lambda r: r["seconds"]) for name, tries in turns.items()}
    runs["ray_1"] = ray_1
    local, ray_2 = runs["local"], runs["ray_2"]
    if not local["videos"]:
        raise SystemExit("scaleout: the local run made features for no video")
    return {
        "backend": backend, "videos": local["videos"], "runs": runs, "turns": turns,
        "seconds_each_turn": {name: [r["seconds"] for r in tries] for name, tries in turns.items()},
        "identical_in_every_turn": all(r["sha256"] == local["sha256"]
                                       for tries in turns.values() for r in tries),
        "ray_identical_to_local": ray_2["sha256"] == local["sha256"],
        "ray_2_over_local": round(ray_2["seconds"] / local["seconds"], 3),
        # What Ray adds beyond its per-task cost and ray.init: worker processes importing
        # torch, each extract actor loading the model, and what these timings do not explain.
        "ray_other_overhead_s": round(ray_2["seconds"] - local["seconds"]
                                  - local["videos"] * ray_2["noop_task_ms"] / 1000, 2),
        "ray_2_over_local_with_startup": round(
            (ray_2["seconds"] + ray_2["startup_s"]) / local["seconds"], 3),
        "ray_1_over_ray_2": round(runs["ray_1"]["seconds"] / ray_2["seconds"], 3),
        "ray_startup_s": ray_2["startup_s"],
        "per_video_overhead_ms": ray_2["noop_task_ms"],
        "per_video_extra_ms": round(1000 * (ray_2["seconds"] - local["seconds"])
                                    / local["videos"], 1),
        "seconds_per_video_local": round(local["seconds"] / local["videos"], 4),
    }
