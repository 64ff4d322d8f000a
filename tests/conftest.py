"""Shared fixtures: small real videos made with the same ffmpeg the pipeline uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidmem.demo import encode_webm
from vidmem.ffmpeg_bin import ffmpeg_executable
from vidmem.params import DecodeConfig

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def grey_ramp_video(path: Path, n_frames: int, step: int = 9, size=(64, 48), fps: int = 10) -> Path:
    """A video whose frame i is uniformly grey at level 10 + step*i, so a decoded frame's mean
    tells which source frame it was."""
    width, height = size
    levels = [10 + step * i for i in range(n_frames)]
    frames = np.stack([np.full((height, width, 3), v, np.uint8) for v in levels])
    encode_webm(frames, path, fps, ffmpeg_executable())
    return path


def frame_number(frame: np.ndarray, step: int = 9) -> int:
    return int(round((float(frame.mean()) - 10) / step))


@pytest.fixture
def decode_config() -> DecodeConfig:
    return DecodeConfig(n_frames=8, short_side=48, workers=2, short_video="repeat", timeout_s=30,
                        ffmpeg=None)
