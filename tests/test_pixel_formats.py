"""Decode gives correct 8-bit RGB frames whatever the source's pixel format or bit depth.

Each clip is the same content (blocks of solid colour, a different arrangement per frame, so
chroma subsampling and palettes are exact and a wrong frame is visible) encoded in one pixel
format; its decode is compared with a decode of the same content encoded as ordinary 8-bit
4:2:0, for both strategies (whole stream, keyframe seeks) and for 1 and 8 frames. Before decode
forced rgb24, a 10-bit clip gave 16-bit PPM frames read as 8-bit: a garbage frame with
`n_frames: 1` (mean difference 108 grey levels), right-shaped wrong frames through seeks.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidmem.core.errors import VideoError
from vidmem.video.ffmpeg_bin import ffmpeg_executable
from vidmem.video.frames import _parse_ppm_stream, decode_video

# (name, codec, pixel format, container, extra ffmpeg output args); all near-lossless.
FORMATS = {
    "yuv420p10le": ("libx264", "yuv420p10le", "mp4", ["-qp", "0"]),
    "yuv422p": ("libx264", "yuv422p", "mp4", ["-qp", "0"]),
    "yuv444p": ("libx264", "yuv444p", "mp4", ["-qp", "0"]),
    "gray": ("libx264", "gray", "mp4", ["-qp", "0"]),
    "yuv420p12le": ("ffv1", "yuv420p12le", "mkv", []),
    "yuva420p": ("libvpx-vp9", "yuva420p", "webm", ["-lossless", "1"]),
    # A palette made from the clip itself, no dithering: exact for 8 colours.
    "pal8": ("gif", "pal8", "gif", ["-filter_complex", "split[a][b];[a]palettegen="
             "reserve_transparent=0[p];[b][p]paletteuse=dither=none"]),
    "gray10le": ("libx264", "gray10le", "mp4", ["-qp", "0"]),
}
# Moderate colours, as in natural footage: swscale's fast 8-bit 4:2:0 path and its generic deep
# colour path round saturated colours differently (up to 2.6 levels apart on pure hues, while a
# float conversion puts the two decodes 0.5 apart), which is the converter, not a misread.
PALETTE = np.array([[150, 110, 100], [110, 150, 115], [105, 115, 155], [150, 145, 105],
                    [70, 70, 70], [190, 190, 190], [145, 110, 145], [110, 145, 145]], np.uint8)


def block_frames(n_frames: int, width: int = 64, height: int = 48, grey: bool = False,
                 seed: int = 0) -> np.ndarray:
    """[n, h, w, 3] uint8: 8x8 blocks of palette colours, rearranged each frame."""
    rng = np.random.default_rng(seed)
    colours = PALETTE.mean(axis=1, keepdims=True).repeat(3, 1).astype(np.uint8) if grey else PALETTE
    picks = rng.integers(0, len(colours), (n_frames, height // 8, width // 8))
    return colours[picks].repeat(8, axis=1).repeat(8, axis=2)


def encode(frames: np.ndarray, path: Path, codec: str, pix_fmt: str, extra: list[str],
           keyint: int = 4) -> Path:
    n, h, w, _ = frames.shape
    gop = [] if codec in ("gif", "ffv1") else ["-g", str(keyint)]
    subprocess.run([ffmpeg_executable(), "-loglevel", "error", "-y", "-f", "rawvideo",
                    "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "10", "-i", "pipe:",
                    "-c:v", codec, "-pix_fmt", pix_fmt, *gop, *extra, str(path)],
                   input=frames.tobytes(), check=True, capture_output=True)
    return path


def reference(frames: np.ndarray, folder: Path, name: str) -> Path:
    return encode(frames, folder / f"{name}-ref.mp4", "libx264", "yuv420p", ["-qp", "0"])


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_pixel_format_decodes_to_the_8bit_reference(tmp_path, decode_config, name):
    codec, pix_fmt, container, extra = FORMATS[name]
    content = block_frames(24, grey=name.startswith("gray"))
    clip = encode(content, tmp_path / f"clip-{name}.{container}", codec, pix_fmt, extra)
    ref = reference(content, tmp_path, name)
    for n_frames in (1, 8):
        config = replace(decode_config, n_frames=n_frames, short_side=48)
        expected = decode_video(ref, config, strategy="whole").frames
        for strategy in ("whole", "seek"):
            got = decode_video(clip, config, strategy=strategy)
            assert got.frames.shape == expected.shape and got.frames.dtype == np.uint8
            for k, (frame, want) in enumerate(zip(got.frames, expected, strict=True)):
                assert mean_abs_diff(frame, want) <= 2, (name, strategy, n_frames, k)


def test_seek_strategy_is_really_taken_for_a_deep_colour_clip(tmp_path, decode_config):
    """The seek path has its own ffmpeg runs: make sure the 10-bit test above exercises it."""
    clip = encode(block_frames(40), tmp_path / "deep.mp4", "libx264", "yuv420p10le",
                  ["-qp", "0"], keyint=4)
    assert decode_video(clip, replace(decode_config, n_frames=2), strategy="seek").strategy == "seek"


@settings(max_examples=12)
@given(name=st.sampled_from(sorted(FORMATS)), width=st.sampled_from([16, 40, 64]),
       height=st.sampled_from([16, 32, 48]), n_frames=st.integers(1, 6),
       seed=st.integers(0, 1000))
def test_generated_clips_decode_close_to_their_reference(tmp_path_factory, decode_config, name,
                                                         width, height, n_frames, seed):
    folder = tmp_path_factory.mktemp("gen")
    codec, pix_fmt, container, extra = FORMATS[name]
    content = block_frames(10, width, height, grey=name.startswith("gray"), seed=seed)
    clip = encode(content, folder / f"clip.{container}", codec, pix_fmt, extra)
    config = replace(decode_config, n_frames=n_frames, short_side=max(width, height))
    expected = decode_video(reference(content, folder, "r"), config).frames
    got = decode_video(clip, config).frames
    assert got.shape == expected.shape == (n_frames, height, width, 3)
    assert got.dtype == np.uint8
    assert mean_abs_diff(got, expected) <= 2


# --- the PPM stream itself: never a frame from bytes that are not what the header says ------

@st.composite
def ppm_streams(draw) -> tuple[bytes, list[np.ndarray], str | None]:
    """A stream of whole 8-bit frames, and sometimes one fault: a 16-bit header, a header that
    promises more bytes than follow, a zero size, or trailing bytes that are no frame."""
    frames, parts = [], []
    for _ in range(draw(st.integers(1, 3))):
        width, height = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        pixels = draw(st.binary(min_size=width * height * 3, max_size=width * height * 3))
        frames.append(np.frombuffer(pixels, np.uint8).reshape(height, width, 3))
        parts.append(b"P6\n%d %d\n255\n" % (width, height) + pixels)
    fault = draw(st.sampled_from([None, "maxval", "short", "zero", "trailing"]))
    if fault == "maxval":  # what ffmpeg writes for 10-bit input: 2 bytes per sample
        w, h = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        parts.insert(draw(st.integers(0, len(parts))),
                     b"P6\n%d %d\n65535\n" % (w, h) + bytes(w * h * 6))
    elif fault == "short":
        parts[-1] = parts[-1][:-draw(st.integers(1, 3))]
    elif fault == "zero":
        parts.append(b"P6\n0 3\n255\n")
    elif fault == "trailing":
        parts.append(draw(st.binary(min_size=1, max_size=8).filter(lambda b: not b.startswith(b"P6"))))
    return b"".join(parts), frames, fault


@given(ppm_streams())
def test_ppm_parser_returns_exactly_the_headers_frames_or_an_error(stream):
    data, frames, fault = stream
    if fault is None:
        parsed = _parse_ppm_stream(data, "clip.mp4")
        assert len(parsed) == len(frames)
        for got, want in zip(parsed, frames, strict=True):
            assert got.dtype == np.uint8 and got.shape == want.shape
            assert np.array_equal(got, want)
    else:
        with pytest.raises(VideoError, match="clip.mp4"):
            _parse_ppm_stream(data, "clip.mp4")


def test_sixteen_bit_ppm_is_refused_with_its_maxval():
    with pytest.raises(VideoError, match="maxval 65535, not 8-bit"):
        _parse_ppm_stream(b"P6\n2 1\n65535\n" + bytes(12), "deep.mp4")
