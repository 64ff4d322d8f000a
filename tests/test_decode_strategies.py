"""Long-clip decode (#15): keyframe seeks and the whole-stream pass give the same frames, byte for
byte, on every kind of clip; the cost model picks seeks only where they pay; timeouts hold."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from vidmem.core.errors import VideoError
from vidmem.core.params import DecodeConfig
from vidmem.video.ffmpeg_bin import ffmpeg_executable
from vidmem.video.frames import StreamIndex, choose_strategy, decode_video, index_stream

SOURCE = ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30:duration=4"]
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-g", "40", "-bf", "3", "-pix_fmt", "yuv420p"]
CLIPS = {
    "h264_bframes.mp4": SOURCE + X264,
    "vp8.webm": SOURCE + ["-c:v", "libvpx", "-g", "30", "-b:v", "300k"],
    "vp9.webm": SOURCE + ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
                          "-g", "30", "-b:v", "300k"],
    # 10 fps for 2 s, then 30 fps for 2 s: frame times are not index / fps.
    "vfr.mkv": ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=2", "-f", "lavfi",
                "-i", "testsrc2=size=160x120:rate=30:duration=2", "-filter_complex",
                "[0:v]settb=1/1000[a];[1:v]settb=1/1000[b];[a][b]concat=n=2:v=1[v]",
                "-map", "[v]", "-fps_mode", "vfr"] + X264,
}


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    for name, args in CLIPS.items():
        ffmpeg(*args, str(folder / name))
    # Rotated: the same H.264 stream with a 90° display matrix (phones record like this).
    ffmpeg("-display_rotation", "90", "-i", str(folder / "h264_bframes.mp4"), "-c", "copy",
           str(folder / "rotated.mp4"))
    return {path.name: path for path in folder.iterdir()}


def config(**changes) -> DecodeConfig:
    values = {"n_frames": 8, "short_side": 64, "workers": 1, "short_video": "repeat",
              "timeout_s": 30, "ffmpeg": None, **changes}
    return DecodeConfig(**values)


@pytest.mark.parametrize("name", ["h264_bframes.mp4", "vp8.webm", "vp9.webm", "vfr.mkv",
                                  "rotated.mp4"])
def test_seeks_and_whole_stream_give_identical_frames(clips, name):
    whole = decode_video(clips[name], config(), strategy="whole")
    seek = decode_video(clips[name], config(), strategy="seek")
    assert (whole.strategy, seek.strategy) == ("whole", "seek")  # both really ran
    assert seek.indices == whole.indices
    assert seek.frames.dtype == np.uint8 and seek.frames.shape == whole.frames.shape
    assert seek.frames.tobytes() == whole.frames.tobytes()
    if name == "rotated.mp4":
        assert whole.frames.shape[1] > whole.frames.shape[2]  # portrait after the rotation
    if name == "vfr.mkv":
        times = index_stream(clips[name]).times
        assert len(set(np.round(np.diff(times), 3))) > 1  # really variable


def test_the_stream_index_matches_the_decoded_frame_count(clips):
    index = index_stream(clips["h264_bframes.mp4"])
    assert len(index) == 120 and index.keyframe[0] and np.all(np.diff(index.times) > 0)
    assert index.keyframe.sum() == 3  # every 40 frames
    assert index_stream(clips["h264_bframes.mp4"].with_name("missing.mp4")) is None


def test_strategy_follows_the_cost_of_each():
    def stream(frames: int, keyframe_every: int, pixels: int) -> StreamIndex:
        return StreamIndex(np.arange(frames) / 30, np.arange(frames) % keyframe_every == 0,
                           pixels)

    wanted = [int((k + 0.5) * 9000 / 8) for k in range(8)]
    assert choose_strategy(stream(9000, 250, 1280 * 720), wanted) == "seek"  # 5 min 720p
    short = [int((k + 0.5) * 210 / 8) for k in range(8)]
    assert choose_strategy(stream(210, 30, 640 * 360), short) == "whole"  # a MediaEval clip
    # One keyframe at the start: a seek decodes as much as the whole pass, plus processes.
    assert choose_strategy(stream(9000, 10**6, 1280 * 720), wanted) == "whole"
    assert choose_strategy(None, wanted) == "whole"


def test_a_long_clip_decodes_by_seeks_well_inside_the_timeout(tmp_path):
    clip = tmp_path / "long.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=40", "-c:v", "libx264",
           "-preset", "ultrafast", "-crf", "35", "-g", "60", "-bf", "2", "-pix_fmt", "yuv420p",
           str(clip))
    timeout = 8.0
    start = time.monotonic()
    decoded = decode_video(clip, config(timeout_s=timeout, short_side=128))
    elapsed = time.monotonic() - start
    assert decoded.strategy == "seek" and decoded.frames.shape == (8, 128, 228, 3)
    assert elapsed < timeout / 4, elapsed
    with pytest.raises(VideoError, match="did not finish within"):
        decode_video(clip, config(timeout_s=0.01, short_side=128), strategy="seek")
