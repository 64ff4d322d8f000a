"""Synthetic benchmark clips, made with the demo's own renderer and encoder."""

from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path

from vidmem.store.executor import local_map_chunks


def make_videos(args: argparse.Namespace, folder: Path, first: int, count: int) -> list[Path]:
    """Videos `first` .. `first + count - 1` of a fixed synthetic set (seed 1), in `folder`."""
    from vidmem.data.demo import DemoConfig, demo_latents
    from vidmem.video.ffmpeg_bin import ffmpeg_executable

    config = DemoConfig(n_videos=first + count, seconds=args.seconds, fps=args.fps,
                        width=args.width, height=args.height, seed=1)
    latents = demo_latents(config).iloc[first:]
    folder.mkdir(parents=True, exist_ok=True)
    binary = ffmpeg_executable()

    rows = [row for _, row in latents.iterrows()]
    paths = [folder / row["video"] for row in rows]
    todo = [(row, path) for row, path in zip(rows, paths, strict=True) if not path.exists()]
    make = functools.partial(_make_clips, config=config, binary=binary)
    # On the library's worker processes where it has them (`local_map_chunks`), one clip per
    # chunk: 16 threads took 92 s for 128 clips of 7 s on the 16-core GPU box, where the work
    # is about 12.6 s per core (rendering 0.76 s per clip in numpy, encoding 0.82 s in ffmpeg).
    # Why is not established: 2 threads on 2 cores render 2.2x faster than one, so the render
    # lets the GIL go at least part of the time.
    list(local_map_chunks(lambda: make, [[item] for item in todo], os.cpu_count() or 1,
                          processes=True))
    return paths


def _make_clips(chunk: list[tuple], config, binary: str) -> None:
    from vidmem.data.demo import encode_webm, render_frames

    for row, path in chunk:
        encode_webm(render_frames(row, config), path, config.fps, binary)


def folder_of(videos: list[Path], folder: Path) -> Path:
    """A videos folder holding exactly `videos` (hard links: decode refuses symbolic links that
    point out of the folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {video.name for video in videos}
    for stale in folder.iterdir():  # left by a run with more videos
        if stale.name not in wanted:
            stale.unlink()
    for video in videos:
        target = folder / video.name
        if not target.exists():
            os.link(video, target)
    return folder
