"""Decode of long clips: the decode stage's code (which picks keyframe seeks for sparse frames)
vs the seek floor (8 ffmpeg processes per clip, each `-ss` before `-i` at a wanted frame, the
frame times known in advance) and vs one whole-stream pass (what decode did before)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.harness import WORK, bench_params, timed

SOURCES = ["testsrc2=size=1280x720:rate=30", "testsrc=size=1280x720:rate=30",
           "life=size=1280x720:rate=30:ratio=0.3:mold=10"]


def make_long_clips(args: argparse.Namespace, folder: Path) -> list[Path]:
    """`--long-clips` H.264 clips, 1280×720, 30 fps, a keyframe every 250 frames, B-frames
    (the issue's case), `--long-seconds` long, from ffmpeg's test sources."""
    from vidmem.video.ffmpeg_bin import ffmpeg_executable

    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for k in range(args.long_clips):
        path = folder / f"long{k}.mp4"
        if not path.exists():
            subprocess.run(
                [ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                 "-i", SOURCES[k % len(SOURCES)], "-t", str(args.long_seconds),
                 "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "250", "-crf", "30",
                 "-pix_fmt", "yuv420p", str(path)], check=True)
        clips.append(path)
    return clips


def bench_decode_long(args: argparse.Namespace) -> dict:
    from vidmem.backends import decode_config
    from vidmem.video.ffmpeg_bin import ffmpeg_executable
    from vidmem.video.frames import (
        decode_video,
        evenly_spaced_indices,
        index_stream,
        scale_filter,
    )

    config = decode_config(bench_params(args))
    folder = WORK / "long_clips"
    clips = make_long_clips(args, folder)
    binary = ffmpeg_executable()
    times = {}
    for clip in clips:
        index = index_stream(clip)
        times[clip] = [float(index.times[i]) for i in
                       sorted(set(evenly_spaced_indices(len(index), args.frames)))]

    def floor_one(clip: Path) -> None:
        for start in times[clip]:
            subprocess.run([binary, "-hide_banner", "-nostdin", "-loglevel", "error",
                            "-ss", f"{start:.6f}", "-threads", "1", "-i", str(clip),
                            "-map", "0:v:0", "-frames:v", "1", "-vf", scale_filter(config.short_side),
                            "-filter_threads", "1", "-f", "rawvideo", "-pix_fmt", "rgb24",
                            "-y", "/dev/null"], check=True)

    strategies = []

    def stage_one(clip: Path) -> None:
        strategies.append(decode_video(clip, config, binary).strategy)

    def whole_one(clip: Path) -> None:
        decode_video(clip, config, binary, strategy="whole")

    def parallel(function) -> None:
        with ThreadPoolExecutor(config.workers) as pool:
            list(pool.map(function, clips))

    stage_s, _ = timed(parallel, stage_one)
    floor_s, _ = timed(parallel, floor_one)
    whole_s, _ = timed(parallel, whole_one)
    shutil.rmtree(WORK / "decode_long_out", ignore_errors=True)
    return {"clips": len(clips), "seconds_per_clip": args.long_seconds,
            "clip": "1280x720, 30 fps, H.264 (x264 ultrafast, crf 30, B-frames 2), keyframe "
                    "every 250 frames",
            "strategies": sorted(set(strategies)), "stage_s": round(stage_s, 2),
            "seek_floor_s": round(floor_s, 2), "whole_stream_s": round(whole_s, 2),
            "stage_over_seek_floor": round(stage_s / floor_s, 2),
            "whole_over_stage": round(whole_s / stage_s, 2)}
