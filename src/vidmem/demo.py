"""A deterministic synthetic data set in the MediaEval 2018 layout, for running the whole DAG offline.

Each demo video shows one coloured disc moving over a plain grey background. Three latent values
are drawn per video from the seed: the disc's radius (`size`, 0..1), the background's grey level
(`brightness`, 0..1) and nuisance values (disc hue, direction, speed) that carry no signal. The
scores are

    short-term = 0.55 + 0.40 * (0.6 * size + 0.4 * brightness) + N(0, noise)
    long-term  = 0.45 + 0.45 * (0.3 * size + 0.7 * brightness) + N(0, 1.5 * noise)

clipped to [0, 1]. So a pipeline that keeps features and labels aligned reaches a clearly positive
Spearman on held-out videos, and one that misaligns them gets about 0.
"""

from __future__ import annotations

import colorsys
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg
import numpy as np
import pandas as pd
from tqdm import tqdm

from vidmem.ffmpeg_bin import ffmpeg_executable
from vidmem.files import atomic_path, write_csv
from vidmem.groundtruth import COLUMNS
from vidmem.params import as_float, as_int, lookup


@dataclass(frozen=True)
class DemoConfig:
    n_videos: int = 240
    seconds: float = 2.0
    fps: int = 12
    width: int = 192
    height: int = 108
    noise: float = 0.03
    seed: int = 0

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> DemoConfig:
        return cls(
            n_videos=as_int(lookup(params, "demo.n_videos"), "demo.n_videos", 1),
            seconds=as_float(lookup(params, "demo.seconds"), "demo.seconds", 0.1),
            fps=as_int(lookup(params, "demo.fps"), "demo.fps", 1),
            width=as_int(lookup(params, "demo.width"), "demo.width", 16),
            height=as_int(lookup(params, "demo.height"), "demo.height", 16),
            noise=as_float(lookup(params, "demo.noise"), "demo.noise", 0),
            seed=as_int(lookup(params, "demo.seed"), "demo.seed", 0),
        )


def demo_latents(config: DemoConfig) -> pd.DataFrame:
    """Per-video latent values and both scores, in video order (video1.webm, video2.webm, ...)."""
    rng = np.random.default_rng(config.seed)
    n = config.n_videos
    size = rng.uniform(0, 1, n)
    brightness = rng.uniform(0, 1, n)
    hue = rng.uniform(0, 1, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    speed = rng.uniform(0.1, 0.4, n)
    short = 0.55 + 0.40 * (0.6 * size + 0.4 * brightness) + rng.normal(0, config.noise, n)
    long = 0.45 + 0.45 * (0.3 * size + 0.7 * brightness) + rng.normal(0, 1.5 * config.noise, n)
    return pd.DataFrame({
        "video": [f"video{i + 1}.webm" for i in range(n)],
        "size": size, "brightness": brightness, "hue": hue, "angle": angle, "speed": speed,
        "short-term_memorability": np.clip(short, 0, 1).round(3),
        "long-term_memorability": np.clip(long, 0, 1).round(3),
        "nb_short-term_annotations": rng.integers(30, 40, n),
        "nb_long-term_annotations": rng.integers(8, 16, n),
    })


def render_frames(row: pd.Series, config: DemoConfig) -> np.ndarray:
    """RGB uint8 frames [T, H, W, 3] for one video's latent values."""
    t_count = max(1, round(config.seconds * config.fps))
    h, w = config.height, config.width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grey = 20 + 215 * row["brightness"]
    radius = (0.10 + 0.35 * row["size"]) * min(h, w)
    colour = np.array(colorsys.hsv_to_rgb(row["hue"], 0.9, 0.95)) * 255
    frames = np.empty((t_count, h, w, 3), dtype=np.uint8)
    for t in range(t_count):
        # The disc bounces around the centre; its path is nuisance, not signal.
        phase = row["speed"] * t
        cx = w / 2 + 0.25 * w * np.sin(phase + row["angle"])
        cy = h / 2 + 0.25 * h * np.cos(phase * 1.3 + row["angle"])
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
        frame = np.full((h, w, 3), grey, dtype=np.float32)
        frame[inside] = colour
        frames[t] = frame.round().astype(np.uint8)
    return frames


def encode_webm(frames: np.ndarray, path: str | os.PathLike, fps: int, ffmpeg_bin: str) -> None:
    """Encode RGB frames as a VP8 WebM, bit-exact so the same seed gives the same bytes."""
    t, h, w, _ = frames.shape
    with atomic_path(path, suffix=".webm") as tmp:
        stream = (
            ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", r=fps)
            .output(str(tmp), vcodec="libvpx", pix_fmt="yuv420p", crf=10, **{"b:v": "1M"},
                    threads=1, format="webm", fflags="+bitexact", map_metadata=-1,
                    **{"flags:v": "+bitexact"})
            .overwrite_output()
            .global_args("-loglevel", "error")
        )
        stream.run(cmd=ffmpeg_bin, input=frames.tobytes(), quiet=True)


def make_demo_dataset(videos_dir: str | os.PathLike, ground_truth: str | os.PathLike,
                      config: DemoConfig, workers: int = 2) -> pd.DataFrame:
    """Write the demo videos and a MediaEval-format ground-truth CSV; return the latent table."""
    videos_dir = Path(videos_dir)
    videos_dir.mkdir(parents=True, exist_ok=True)
    latents = demo_latents(config)
    ffmpeg_bin = ffmpeg_executable()

    def make_one(row: pd.Series) -> None:
        encode_webm(render_frames(row, config), videos_dir / row["video"], config.fps, ffmpeg_bin)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        rows = [row for _, row in latents.iterrows()]
        list(tqdm(pool.map(make_one, rows), total=len(rows), desc="demo videos", unit="video"))
    write_csv(ground_truth, latents[COLUMNS])
    return latents
