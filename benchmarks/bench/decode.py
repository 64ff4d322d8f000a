"""Decode: the stage's code vs a bare ffmpeg doing the same whole-stream selection and scaling
(the floor), and vs the naive approach (one ffmpeg seek process per frame). The stage's own
work beyond the floor (reading ffmpeg's output, resizing to the backends' shared input size,
compressing, writing shards) is what the ratio measures."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ffmpeg

from bench.harness import WORK, bench_params, timed
from vidmem.store.shards import ShardReader


def ffmpeg_floor(videos: list[Path], frames: int, short_side: int, workers: int, binary: str,
                 totals: dict[Path, int]) -> float:
    """Seconds for a bare ffmpeg per video, `workers` at a time, doing the stage's whole-stream
    selection and scaling into /dev/null: the decode stage's floor."""
    from vidmem.video.frames import evenly_spaced_indices, frame_filter

    def one(video: Path) -> None:
        indices = sorted(set(evenly_spaced_indices(totals[video], frames)))
        (ffmpeg.input(str(video), threads=1)
         .output("/dev/null", vf=frame_filter(indices, short_side), format="rawvideo",
                 pix_fmt="rgb24", fps_mode="vfr", filter_threads=1,
                 **{"frames:v": len(indices)})
         .global_args("-loglevel", "error", "-nostdin").overwrite_output()
         .run(cmd=binary, quiet=True))

    def parallel() -> None:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, videos))

    return timed(parallel)[0]


def bench_decode(args: argparse.Namespace, videos_dir: Path) -> dict:
    from vidmem.backends import decode_config
    from vidmem.video.ffmpeg_bin import ffmpeg_executable
    from vidmem.video.frames import count_frames, decode_step, evenly_spaced_indices

    config = decode_config(bench_params(args))  # as the decode stage resolves params.yaml
    binary = ffmpeg_executable()
    videos = sorted(videos_dir.iterdir())
    totals = {v: count_frames(v, binary, 60) for v in videos}

    def naive_one(video: Path) -> None:
        # One seek-and-decode process per frame, as notebooks often do.
        for index in evenly_spaced_indices(totals[video], args.frames):
            (ffmpeg.input(str(video), ss=index / args.fps, threads=1)
             .output("pipe:", vframes=1, vf=f"scale=-1:{config.short_side}", format="rawvideo",
                     pix_fmt="rgb24")
             .global_args("-loglevel", "error", "-nostdin")
             .run(cmd=binary, capture_stdout=True, quiet=True))

    def parallel(function) -> None:
        with ThreadPoolExecutor(config.workers) as pool:
            list(pool.map(function, videos))

    out = WORK / "decode_out"
    shutil.rmtree(out, ignore_errors=True)
    stage_s, _ = timed(decode_step, videos_dir, out, config, "skip", None, False)
    # The same with frames stored raw: the decoding alone, without the storage encoding.
    raw = dataclasses.replace(config, format="npy")
    shutil.rmtree(WORK / "decode_raw", ignore_errors=True)
    raw_s, _ = timed(decode_step, videos_dir, WORK / "decode_raw", raw, "skip", None, False)
    floor_s = ffmpeg_floor(videos, args.frames, config.short_side, config.workers, binary, totals)
    naive_s, _ = timed(parallel, naive_one)
    stored = ShardReader(out).load(ShardReader(out).stems()[0]).shape
    return {"videos": len(videos), "format": config.format, "short_side": config.short_side,
            "stored_frames": list(stored), "stage_s": round(stage_s, 2),
            "stage_npy_s": round(raw_s, 2), "npy_over_floor": round(raw_s / floor_s, 2),
            "floor_s": round(floor_s, 2),
            "naive_s": round(naive_s, 2), "stage_over_floor": round(stage_s / floor_s, 2),
            "naive_over_stage": round(naive_s / stage_s, 2)}
