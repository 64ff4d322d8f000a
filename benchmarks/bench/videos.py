"""Synthetic benchmark clips, made with the demo's own renderer and encoder."""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def make_videos(args: argparse.Namespace, folder: Path, first: int, count: int) -> list[Path]:
    """Videos `first` .. `first + count - 1` of a fixed synthetic set (seed 1), in `folder`."""
    from vidmem.data.demo import DemoConfig, demo_latents, encode_webm, render_frames
    from vidmem.video.ffmpeg_bin import ffmpeg_executable

    config = DemoConfig(n_videos=first + count, seconds=args.seconds, fps=args.fps,
                        width=args.width, height=args.height, seed=1)
    latents = demo_latents(config).iloc[first:]
    folder.mkdir(parents=True, exist_ok=True)
    binary = ffmpeg_executable()

    def one(row) -> Path:
        path = folder / row["video"]
        if not path.exists():
            encode_webm(render_frames(row, config), path, config.fps, binary)
        return path

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        return list(pool.map(one, [row for _, row in latents.iterrows()]))


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
