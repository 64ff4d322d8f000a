"""Decoding N evenly spaced frames per video with ffmpeg (built through ffmpeg-python).

One ffmpeg process per video decodes the stream once and keeps only the wanted frames with the
`select` filter; per-frame `-ss` seeks would start N processes per video and only pay off on long
videos. The frames are counted first, because WebM duration metadata is optional: for
WebM/Matroska by walking the container in Python (`vidmem.video.matroska`), which saves a process per
video; other formats, and any file that walk is unsure of, by a quick ffmpeg stream copy.

ffmpeg scales the frames down (never up) to the short side. When the listed backends share one
input geometry (`DecodeConfig.input_geometry`), the frames are then resized to it with the
extract loader's own `resize_frames`, so they are stored at the size the network takes and the
features are the same, bit for bit, as when the extract stage resized them.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import ffmpeg
import numpy as np

from vidmem.core.errors import ShortVideoError, VideoError, VidmemError
from vidmem.core.files import atomic_dir
from vidmem.core.params import DecodeConfig
from vidmem.store.cache import ItemCache, open_cache
from vidmem.store.engine import Skipped, Todo, VideoResult, run_per_video
from vidmem.store.framestore import FrameFormat
from vidmem.video.ffmpeg_bin import ffmpeg_executable
from vidmem.video.geometry import shrink_to_input
from vidmem.video.listing import (  # noqa: F401 - re-exported: decode's callers import them here
    VIDEO_EXTENSIONS,
    check_inside_folder,
    ignored_entries,
    list_videos,
)
from vidmem.video.matroska import video_packet_count

# Bump when decoding logic changes, so cached frames from older code are not reused.
DECODE_VERSION = 3  # 2: frames are never upscaled; 3: rgb24 forced (deep-colour frames were misread)

_PPM_HEADER = re.compile(rb"P6\s+(\d+)\s+(\d+)\s+(\d+)\s")
_FRAME_COUNT = re.compile(r"frame=\s*(\d+)")


def evenly_spaced_indices(total: int, n: int) -> list[int]:
    """Indices of the centres of `n` equal segments of `total` frames (repeats when total < n)."""
    return [min(total - 1, int((k + 0.5) * total / n)) for k in range(n)]


def _timed_out(video: Path, timeout: float) -> VideoError:
    return VideoError(video.name, f"ffmpeg did not finish within {timeout:g} s (decode.timeout_s)")


def _run(args: list[str], video: Path, timeout: float) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise _timed_out(video, timeout) from None
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        if "matches no streams" in message:  # `-map 0:v:0` on a file without video
            raise VideoError(video.name, "no video stream (audio only, or not a video file)")
        lines = message.splitlines()
        raise VideoError(video.name, f"ffmpeg failed: {lines[-1] if lines else 'no message'}")
    return result


def count_frames(video: Path, ffmpeg_bin: str, timeout: float, decode: bool = False) -> int:
    """Number of video frames: packets by stream copy (fast), or decoded frames if `decode`."""
    stream = ffmpeg.input(str(video), threads=1).output(
        "-", format="null", map="0:v:0", **({} if decode else {"c": "copy"}))
    args = stream.global_args("-hide_banner", "-nostdin").compile(cmd=ffmpeg_bin)
    result = _run(args, video, timeout)
    counts = _FRAME_COUNT.findall(result.stderr.decode(errors="replace"))
    if not counts:
        raise VideoError(video.name, "no video stream found")
    return int(counts[-1])


def _parse_ppm_stream(data: bytes, video: str = "video") -> list[np.ndarray]:
    """The 8-bit RGB frames of a PPM stream, each checked against its own header: any header that
    is not 8-bit (maxval 255: ffmpeg writes 16-bit samples, maxval 65535, for a high bit depth
    source unless told rgb24), a frame cut short, or bytes after the last frame are a
    VideoError naming `video`, never a frame made of misread bytes."""
    frames = []
    offset = 0
    while offset < len(data):
        match = _PPM_HEADER.match(data, offset)
        if not match:
            raise VideoError(video, f"ffmpeg wrote {len(data) - offset} byte(s) that are not an "
                                    f"RGB PPM frame (at byte {offset})")
        width, height, maxval = int(match[1]), int(match[2]), int(match[3])
        if maxval != 255 or width == 0 or height == 0:
            raise VideoError(video, f"ffmpeg wrote a {width}x{height} frame with maxval "
                                    f"{maxval}, not 8-bit RGB (maxval 255)")
        start = match.end()
        end = start + width * height * 3
        if end > len(data):
            raise VideoError(video, f"ffmpeg's frame {len(frames) + 1} ({width}x{height}) is cut "
                                    f"short: {len(data) - start} of {end - start} bytes")
        frames.append(np.frombuffer(data, np.uint8, width * height * 3, start)
                      .reshape(height, width, 3))
        offset = end
    return frames


def scale_filter(short_side: int) -> str:
    """Scale down so the shorter side is at most `short_side`, keeping the aspect ratio; a
    smaller video keeps its size (upscaling adds bytes, not information: each backend resizes
    to its own input size anyway)."""
    return (f"scale='if(lte(iw,ih),min(iw,{short_side}),-1)':"
            f"'if(lte(iw,ih),-1,min(ih,{short_side}))':flags=area")


def frame_filter(indices: Sequence[int], short_side: int) -> str:
    """The ffmpeg video filter of the whole-stream pass: keep the frames at `indices` (0-based,
    in presentation order), then `scale_filter`."""
    select = "+".join(f"eq(n\\,{i})" for i in indices)
    return f"select='{select}',{scale_filter(short_side)}"


@dataclass(frozen=True)
class StreamIndex:
    """What the container says about a video stream's frames, read without decoding (PyAV
    demuxes the packets): presentation times in seconds, in presentation order, and which of
    them are keyframes (where a decoder can start)."""

    times: np.ndarray  # float64 [frames], increasing
    keyframe: np.ndarray  # bool [frames]
    pixels: int  # width × height of the coded frames

    def __len__(self) -> int:
        return len(self.times)


def index_stream(video: Path) -> StreamIndex | None:
    """The stream's packet times and keyframes, or None when they cannot be trusted for seeking
    (no timestamps, repeated timestamps, or a file PyAV cannot read: decode then reads the whole
    stream, as it always could)."""
    try:
        with av.open(str(video)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            pts, keys = [], []
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's flush packet
                    continue
                if packet.pts is None:
                    return None
                pts.append(packet.pts)
                keys.append(packet.is_keyframe)
            pixels = (stream.codec_context.width or 0) * (stream.codec_context.height or 0)
            time_base = float(stream.time_base)
    except (av.FFmpegError, OSError, ValueError, IndexError):
        return None
    pts_array = np.asarray(pts, dtype=np.int64)
    order = np.argsort(pts_array, kind="stable")
    if len(order) == 0 or np.any(np.diff(pts_array[order]) <= 0):
        return None
    return StreamIndex(pts_array[order] * time_base, np.asarray(keys, dtype=bool)[order],
                       pixels)


# The cost model that picks a strategy, in seconds, measured with the bundled ffmpeg on a 2-core
# machine (BENCHMARKS.md, "Long clips"): starting one ffmpeg process and seeking costs about
# PROCESS_S; decoding and scaling cost about PIXEL_S per pixel of a frame (720p H.264, one
# thread: 1.1 ms a frame).
PROCESS_S = 0.04
PIXEL_S = 1.2e-9


def choose_strategy(index: StreamIndex | None, wanted: Sequence[int]) -> str:
    """"seek" (one ffmpeg per wanted frame, each starting at the keyframe before it) when that
    decodes clearly less than the whole stream, else "whole" (one pass with `select`)."""
    if index is None or len(index) == 0 or not index.keyframe[0]:
        return "whole"
    frame_s = PIXEL_S * max(index.pixels, 1)
    keyframes = np.flatnonzero(index.keyframe)
    start = keyframes[np.searchsorted(keyframes, np.asarray(wanted), side="right") - 1]
    seek_s = len(wanted) * PROCESS_S + float(np.sum(np.asarray(wanted) - start + 1)) * frame_s
    whole_s = PROCESS_S + len(index) * frame_s
    return "seek" if seek_s < 0.8 * whole_s else "whole"


def seek_times(index: StreamIndex, wanted: Sequence[int]) -> list[float | None]:
    """Where to seek for each wanted frame: halfway between it and the frame before, so rounding
    of either time cannot pick a neighbour (None: the first frame, no seek needed). ffmpeg's
    input seeking starts decoding at the keyframe before that time and drops the frames before
    it, so the first frame out is the wanted one, decoded exactly as in a whole-stream pass."""
    return [None if i == 0 else float((index.times[i - 1] + index.times[i]) / 2) for i in wanted]


def _seek_frames(video: Path, times: Sequence[float | None], short_side: int, ffmpeg_bin: str,
                 timeout: float) -> list[np.ndarray]:
    """One frame per time, each from its own ffmpeg seeking to it (all within `timeout`)."""
    deadline = time.monotonic() + timeout
    frames = []
    for start in times:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _timed_out(video, timeout)
        frames += _ppm_frames(video, ffmpeg_bin, remaining,
                              {} if start is None else {"ss": f"{start:.6f}"},
                              vf=scale_filter(short_side), **{"frames:v": 1})
    return frames


def _select_frames(video: Path, indices: Sequence[int], short_side: int, ffmpeg_bin: str,
                   timeout: float) -> list[np.ndarray]:
    # frames:v: ffmpeg stops once the last wanted frame is out, instead of decoding the rest
    # of the stream (with 8 evenly spaced frames, the last sixteenth of every clip).
    return _ppm_frames(video, ffmpeg_bin, timeout, {}, vf=frame_filter(indices, short_side),
                       fps_mode="vfr", **{"frames:v": len(indices)})


def _ppm_frames(video: Path, ffmpeg_bin: str, timeout: float, input_args: dict[str, Any],
                **output_args: Any) -> list[np.ndarray]:
    """RGB frames from one ffmpeg run over the first video stream, as a PPM stream on a pipe."""
    # pix_fmt rgb24: whatever the source (10/12-bit, 4:2:2, 4:4:4, grey, palette, alpha), ffmpeg
    # converts to 8-bit RGB after the scale; left to choose, it writes 16-bit PPM for deep input.
    stream = ffmpeg.input(str(video), threads=1, **input_args).output(
        "pipe:", format="image2pipe", vcodec="ppm", pix_fmt="rgb24", map="0:v:0",
        filter_threads=1, **output_args)
    args = stream.global_args("-hide_banner", "-nostdin", "-loglevel", "error").compile(
        cmd=ffmpeg_bin)
    return _parse_ppm_stream(_run(args, video, timeout).stdout, video.name)


@dataclass
class DecodedVideo:
    frames: np.ndarray  # uint8 [n_frames, H, W, 3]
    total_frames: int
    indices: list[int]
    repeated: bool  # the video had fewer than n_frames frames and some were repeated
    strategy: str = "whole"  # "whole" stream pass or keyframe "seek"s (same frames either way)


def decode_video(video: str | os.PathLike, config: DecodeConfig,
                 ffmpeg_bin: str | None = None, strategy: str = "auto") -> DecodedVideo:
    """Exactly `config.n_frames` evenly spaced RGB frames of one video, or VideoError.

    `strategy` "auto" picks per video (`choose_strategy`): one pass over the whole stream when
    the wanted frames are dense, keyframe seeks when they are sparse (long clips). Both give the
    same frames, byte for byte (tests), so the choice is not part of the cache key. "whole" and
    "seek" force one (tests, benchmarks)."""
    video = Path(video)
    ffmpeg_bin = ffmpeg_bin or ffmpeg_executable(config.ffmpeg)
    check_inside_folder(video)
    if video.stat().st_size == 0:
        raise VideoError(video.name, "file is empty (0 bytes)")
    n = config.n_frames
    # The frame count: the packets PyAV demuxed for the index; without an index, WebM's
    # packets counted in Python (no second process), else ffmpeg's count. (Walking a WebM in
    # Python as well as indexing it cost 3.8 ms of the GIL per 7 s clip: a 16-thread decode
    # is bounded by the GIL-held time per video.) Packets that decode to no frame (hidden
    # frames) make the selection come back short, and the count is then made by decoding.
    index = index_stream(video) if strategy != "whole" else None
    total = len(index) if index is not None else (
        video_packet_count(video) if video.suffix.lower() in (".webm", ".mkv") else None)
    if total is None:
        total = count_frames(video, ffmpeg_bin, config.timeout_s)
    frames: list[np.ndarray] = []
    for attempt in range(2):
        if total == 0:
            raise VideoError(video.name, "no decodable video frames")
        if total < n and config.short_video != "repeat":
            raise ShortVideoError(video.name, f"only {total} frame(s), fewer than decode.n_frames={n} "
                                         f"(decode.short_video: {config.short_video})")
        indices = evenly_spaced_indices(total, n)
        unique = sorted(set(indices))
        chosen = "whole" if index is None else (
            choose_strategy(index, unique) if strategy == "auto" else strategy)
        if chosen == "seek":
            frames = _seek_frames(video, seek_times(index, unique), config.short_side,
                                  ffmpeg_bin, config.timeout_s)
        else:
            frames = _select_frames(video, unique, config.short_side, ffmpeg_bin,
                                    config.timeout_s)
        if len(frames) == len(unique):
            break
        index = None  # retry with a whole pass over an exact count
        if attempt == 0:
            # Packet count and decodable frames differ (hidden frames, a damaged tail):
            # count by decoding, which is exact, and select again.
            total = count_frames(video, ffmpeg_bin, config.timeout_s, decode=True)
    else:
        raise VideoError(video.name, f"ffmpeg returned {len(frames)} of {len(unique)} selected "
                                     "frames; the file may be truncated or corrupt")
    if len({f.shape for f in frames}) != 1:
        raise VideoError(video.name, "frame size changes within the video")
    by_index = dict(zip(unique, frames, strict=True))
    stacked = np.stack([by_index[i] for i in indices])
    if config.input_geometry is not None:
        stacked = shrink_to_input(stacked, config.input_geometry)
    return DecodedVideo(stacked, total, indices, repeated=len(unique) < n, strategy=chosen)


@dataclass
class DecodeReport:
    decoded: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    repeated: list[str] = field(default_factory=list)
    cache_hits: int = 0  # printed for the user; not written to outputs (it varies by run)

    def add(self, video: Path, result: VideoResult) -> None:
        if result.facts is not None:
            self.decoded.append(video.name)
            if result.facts["repeated"]:
                self.repeated.append(video.name)
        else:
            self.skipped.append({"video": video.name, "stage": "decode",
                                 "reason": result.error or "skipped"})
        self.cache_hits += result.from_cache

    def sort(self, videos: Sequence[Path]) -> None:
        """List the videos in the order of `videos` (the folder's), whatever order they were
        decoded in."""
        position = {video.name: k for k, video in enumerate(videos)}
        self.decoded.sort(key=position.__getitem__)
        self.repeated.sort(key=position.__getitem__)
        self.skipped.sort(key=lambda skipped: position[skipped["video"]])

    def counts(self) -> dict[str, int]:
        return {"videos_found": len(self.decoded) + len(self.skipped),
                "videos_decoded": len(self.decoded), "videos_skipped": len(self.skipped),
                "videos_with_repeated_frames": len(self.repeated)}


def decode_videos(videos: Sequence[Path], out_dir: str | os.PathLike, config: DecodeConfig,
                  on_bad_input: str = "skip", cache_root: str | os.PathLike | None = None,
                  progress: bool = True) -> DecodeReport:
    """Decode every video into the shards of `out_dir` (vidmem.store.shards; uint8
    [n_frames, H, W, 3] per video in `decode.format`), in parallel, through the per-video
    engine (vidmem.store.engine).

    A video that cannot be decoded is skipped and reported (`on_bad_input: skip`) or stops the
    run with its name and the reason (`fail`). `decode.short_video: fail` always stops the run.
    """
    out_dir = Path(out_dir)
    if config.short_side is None:
        raise ValueError("decode.short_side is 'auto': resolve it with "
                         "vidmem.backends.decode_config(params) first")
    ffmpeg_bin = ffmpeg_executable(config.ffmpeg)
    cache_config = {"version": DECODE_VERSION, "n_frames": config.n_frames,
                    "short_side": config.short_side, "short_video": config.short_video,
                    "ffmpeg": os.path.basename(ffmpeg_bin),
                    "input_geometry": None if config.input_geometry is None
                    else config.input_geometry.geometry()}
    fmt = FrameFormat(config.format, config.jpeg_quality)
    cache = open_cache(cache_root, "decode", cache_config, fmt, scratch=out_dir / ".entries")
    by_stem = {video.stem: video for video in videos}

    def key(stem: str, video: Path) -> str:
        try:
            check_inside_folder(video)  # before the key reads the file
            return cache.key(video)
        except (VideoError, OSError) as exc:
            raise Skipped(_bad_input(video, exc, on_bad_input)) from exc

    results = run_per_video(
        [(video.stem, video) for video in videos], cache, out_dir, key=key,
        make_worker=functools.partial(DecodeWorker, config, ffmpeg_bin, cache, on_bad_input),
        # Worker processes, not threads: a video's ffmpeg pipe, PPM parsing and demuxing hold
        # the GIL for milliseconds between system calls, which capped 16 threads at 3.3x the
        # bare ffmpeg floor on a 16-core machine (BENCHMARKS.md).
        threads=config.workers, processes=True, desc="decode", progress=progress)
    report = DecodeReport()
    for result in results:
        report.add(by_stem[result.stem], result)
    report.sort(videos)
    return report


class DecodeWorker:
    """Decodes chunks of videos into the cache (or the stage's scratch folder), from where the
    engine writes them into the stage's shards."""

    def __init__(self, config: DecodeConfig, ffmpeg_bin: str, cache: ItemCache,
                 on_bad_input: str) -> None:
        self.config = config
        self.ffmpeg_bin = ffmpeg_bin
        self.cache = cache
        self.on_bad_input = on_bad_input

    def __call__(self, chunk: list[Todo]) -> list[VideoResult]:
        return [self.decode_one(stem, video, digest) for stem, video, digest in chunk]

    def decode_one(self, stem: str, video: Path, digest: str) -> VideoResult:
        try:
            decoded, digest = self._decode_what_was_hashed(video, digest)
        except ShortVideoError as exc:
            if self.config.short_video == "fail":
                raise VidmemError(f"{video}: {exc.reason}. Set decode.short_video to 'repeat' "
                                  "or 'skip' to accept such videos") from exc
            return VideoResult(stem, digest, error=exc.reason)
        except (VideoError, OSError, ValueError, IndexError, EOFError) as exc:
            # Any per-file problem (unreadable file, a parser bug on crafted bytes) is one bad
            # video: reported under `skip`, never the end of the whole stage.
            return VideoResult(stem, digest, error=_bad_input(video, exc, self.on_bad_input))
        facts = {"repeated": decoded.repeated, "total_frames": decoded.total_frames}
        self.cache.store(digest, decoded.frames, facts)
        return VideoResult(stem, digest, facts)

    def _decode_what_was_hashed(self, video: Path, digest: str) -> tuple[DecodedVideo, str]:
        """The video decoded, and the content digest of the bytes that were decoded. The cache
        key was hashed before the decode: a file replaced in between would store its new
        frames under the old bytes' key, and a later run with the old file would get them. So
        the file is hashed again after decoding, and decoded again while the two differ."""
        for _ in range(3):
            decoded = decode_video(video, self.config, self.ffmpeg_bin)
            if not self.cache.enabled:  # nothing is looked up by content: nothing to poison
                return decoded, digest
            now = self.cache.key(video)
            if now == digest:
                return decoded, digest
            digest = now  # it changed while being decoded: decode what it holds now
        raise VideoError(video.name, "the file kept changing while it was decoded: decode it "
                                     "once it is no longer being written")


def _bad_input(video: Path, exc: Exception, on_bad_input: str) -> str:
    """Why `video` is skipped (`exc` raised while keying or decoding it); under
    `on_bad_input: fail`, the error that stops the stage instead."""
    reason = exc.reason if isinstance(exc, VideoError) else f"{type(exc).__name__}: {exc}"
    if on_bad_input == "fail":
        raise VidmemError(f"cannot decode {video}: {reason}. Fix or remove the file, "
                          "or set data.on_bad_input: skip to skip and report it") from exc
    return reason


def decode_step(videos_dir: str | os.PathLike, out_dir: str | os.PathLike, config: DecodeConfig,
                on_bad_input: str = "skip", cache_dir: str | os.PathLike | None = None,
                progress: bool = True) -> DecodeReport:
    """The decode stage: every video in `videos_dir` → the shards of `out_dir`, written whole
    or not at all; bad videos reported."""
    videos = list_videos(videos_dir)
    with atomic_dir(out_dir) as out:
        return decode_videos(videos, out, config, on_bad_input, cache_dir, progress)
