"""Decoding N evenly spaced frames per video with ffmpeg (built through ffmpeg-python).

One ffmpeg process per video decodes the stream once and keeps only the wanted frames with the
`select` filter; per-frame `-ss` seeks would start N processes per video and only pay off on long
videos. The frames are counted first, because WebM duration metadata is optional: for
WebM/Matroska by walking the container in Python (`vidmem.matroska`), which saves a process per
video; other formats, and any file that walk is unsure of, by a quick ffmpeg stream copy.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import ffmpeg
import numpy as np
from tqdm import tqdm

from vidmem.cache import ItemCache
from vidmem.errors import DataError, ShortVideoError, VideoError, VidmemError
from vidmem.ffmpeg_bin import ffmpeg_executable
from vidmem.files import atomic_dir
from vidmem.matroska import video_packet_count
from vidmem.params import DecodeConfig

VIDEO_EXTENSIONS = (".webm", ".mp4", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv")
# Bump when decoding logic changes, so cached frames from older code are not reused.
DECODE_VERSION = 1

_PPM_HEADER = re.compile(rb"P6\s+(\d+)\s+(\d+)\s+(\d+)\s")
_FRAME_COUNT = re.compile(r"frame=\s*(\d+)")


def list_videos(videos_dir: str | os.PathLike) -> list[Path]:
    """Video files (and links) directly in `videos_dir`, sorted by name; others are ignored."""
    videos_dir = Path(videos_dir)
    if not videos_dir.is_dir():
        raise DataError(f"videos folder {videos_dir} not found: check 'data.videos_dir' in "
                        "params.yaml")
    # Links are listed even when they point nowhere useful, so decode reports them (see
    # check_inside_folder) instead of dropping them without a word.
    videos = sorted(p for p in videos_dir.iterdir()
                    if (p.is_file() or p.is_symlink()) and p.suffix.lower() in VIDEO_EXTENSIONS)
    stems: dict[str, Path] = {}
    for video in videos:
        if video.stem in stems:
            raise DataError(f"{videos_dir}: {stems[video.stem].name} and {video.name} have the "
                            "same name stem; outputs are keyed by stem, so rename one")
        stems[video.stem] = video
    return videos


def check_inside_folder(video: Path) -> None:
    """VideoError unless `video` is a file of its own folder: a symbolic link in the videos
    folder that points elsewhere (`/etc/passwd`, `/dev/zero`, another project) is refused before
    anything reads it. The folder itself may be a link."""
    if video.is_symlink() and video.resolve().parent != video.parent.resolve():
        raise VideoError(video.name, f"symbolic link to {os.readlink(video)}, outside the videos "
                                     "folder; copy the file into the folder or link its folder "
                                     "as data.videos_dir instead")
    if not video.is_file():
        raise VideoError(video.name, "not a regular file")


def evenly_spaced_indices(total: int, n: int) -> list[int]:
    """Indices of the centres of `n` equal segments of `total` frames (repeats when total < n)."""
    return [min(total - 1, int((k + 0.5) * total / n)) for k in range(n)]


def _run(args: list[str], video: Path, timeout: float) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise VideoError(video.name, f"ffmpeg did not finish within {timeout:g} s "
                                     "(decode.timeout_s)") from None
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


def _parse_ppm_stream(data: bytes) -> list[np.ndarray]:
    frames = []
    offset = 0
    while offset < len(data):
        match = _PPM_HEADER.match(data, offset)
        if not match:
            break
        width, height = int(match[1]), int(match[2])
        start = match.end()
        end = start + width * height * 3
        if end > len(data):
            break
        frames.append(np.frombuffer(data, np.uint8, width * height * 3, start)
                      .reshape(height, width, 3))
        offset = end
    return frames


def frame_filter(indices: Sequence[int], short_side: int) -> str:
    """The ffmpeg video filter decode runs: keep the frames at `indices` (0-based, in stream
    order), scaled so the shorter side is `short_side`, keeping the aspect ratio (each backend
    later squashes or crops to its own input size)."""
    select = "+".join(f"eq(n\\,{i})" for i in indices)
    scale = (f"scale='if(lte(iw,ih),{short_side},-1)':'if(lte(iw,ih),-1,{short_side})'"
             ":flags=area")
    return f"select='{select}',{scale}"


def _select_frames(video: Path, indices: Sequence[int], short_side: int, ffmpeg_bin: str,
                   timeout: float) -> list[np.ndarray]:
    stream = ffmpeg.input(str(video), threads=1).output(
        "pipe:", vf=frame_filter(indices, short_side), format="image2pipe", vcodec="ppm",
        fps_mode="vfr", map="0:v:0", filter_threads=1)
    args = stream.global_args("-hide_banner", "-nostdin", "-loglevel", "error").compile(
        cmd=ffmpeg_bin)
    return _parse_ppm_stream(_run(args, video, timeout).stdout)


@dataclass
class DecodedVideo:
    frames: np.ndarray  # uint8 [n_frames, H, W, 3]
    total_frames: int
    indices: list[int]
    repeated: bool  # the video had fewer than n_frames frames and some were repeated


def decode_video(video: str | os.PathLike, config: DecodeConfig,
                 ffmpeg_bin: str | None = None) -> DecodedVideo:
    """Exactly `config.n_frames` evenly spaced RGB frames of one video, or VideoError."""
    video = Path(video)
    ffmpeg_bin = ffmpeg_bin or ffmpeg_executable(config.ffmpeg)
    check_inside_folder(video)
    if video.stat().st_size == 0:
        raise VideoError(video.name, "file is empty (0 bytes)")
    n = config.n_frames
    # WebM/Matroska: count packets in Python (no second process); else ask ffmpeg.
    total = video_packet_count(video) if video.suffix.lower() in (".webm", ".mkv") else None
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
        frames = _select_frames(video, unique, config.short_side, ffmpeg_bin, config.timeout_s)
        if len(frames) == len(unique):
            break
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
    return DecodedVideo(stacked, total, indices, repeated=len(unique) < n)


@dataclass
class DecodeReport:
    decoded: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    repeated: list[str] = field(default_factory=list)
    cache_hits: int = 0  # printed for the user; not written to outputs (it varies by run)

    def counts(self) -> dict[str, int]:
        return {"videos_found": len(self.decoded) + len(self.skipped),
                "videos_decoded": len(self.decoded), "videos_skipped": len(self.skipped),
                "videos_with_repeated_frames": len(self.repeated)}


def decode_videos(videos: Sequence[Path], out_dir: str | os.PathLike, config: DecodeConfig,
                  on_bad_input: str = "skip", cache_root: str | os.PathLike | None = None,
                  progress: bool = True) -> DecodeReport:
    """Decode every video into `out_dir/<stem>.npy` (uint8 [n_frames, H, W, 3]), in parallel.

    A video that cannot be decoded is skipped and reported (`on_bad_input: skip`) or stops the
    run with its name and the reason (`fail`). `decode.short_video: fail` always stops the run.
    """
    out_dir = Path(out_dir)
    ffmpeg_bin = ffmpeg_executable(config.ffmpeg)
    cache_config = {"version": DECODE_VERSION, "n_frames": config.n_frames,
                    "short_side": config.short_side, "short_video": config.short_video,
                    "ffmpeg": os.path.basename(ffmpeg_bin)}
    cache = ItemCache(cache_root, "decode", cache_config)
    report = DecodeReport()

    def work(video: Path) -> tuple[Path, str | None, bool]:
        destination = out_dir / f"{video.stem}.npy"
        try:
            check_inside_folder(video)  # before the cache key reads the file
            digest = cache.key(video)
            facts = cache.fetch(digest, destination)
            if facts is None:
                decoded = decode_video(video, config, ffmpeg_bin)
                facts = {"repeated": decoded.repeated, "total_frames": decoded.total_frames}
                cache.store(digest, decoded.frames, destination, facts)
            return video, None, bool(facts["repeated"])
        except ShortVideoError as exc:
            if config.short_video == "fail":
                raise VidmemError(f"{video}: {exc.reason}. Set decode.short_video to 'repeat' "
                                  "or 'skip' to accept such videos") from exc
            return video, exc.reason, False
        except VideoError as exc:
            return video, bad_input(video, exc.reason, exc), False
        except (OSError, ValueError, IndexError, EOFError) as exc:
            # Any other per-file problem (unreadable file, a parser bug on crafted bytes) is
            # still one bad video: reported under `skip`, never the end of the whole stage.
            return video, bad_input(video, f"{type(exc).__name__}: {exc}", exc), False

    def bad_input(video: Path, reason: str, exc: Exception) -> str:
        if on_bad_input == "fail":
            raise VidmemError(f"cannot decode {video}: {reason}. Fix or remove the file, "
                              "or set data.on_bad_input: skip to skip and report it") from exc
        return reason

    with ThreadPoolExecutor(max_workers=config.workers) as pool:
        results = pool.map(work, videos)
        for video, error, repeated in tqdm(results, total=len(videos), desc="decode",
                                           unit="video", disable=not progress):
            if error is None:
                report.decoded.append(video.name)
                if repeated:
                    report.repeated.append(video.name)
            else:
                report.skipped.append({"video": video.name, "stage": "decode", "reason": error})
    report.cache_hits = cache.hits
    return report


def decode_step(videos_dir: str | os.PathLike, out_dir: str | os.PathLike, config: DecodeConfig,
                on_bad_input: str = "skip", cache_dir: str | os.PathLike | None = None,
                progress: bool = True) -> DecodeReport:
    """The decode stage: every video in `videos_dir` → `out_dir/<stem>.npy`, written whole or
    not at all; bad videos reported."""
    videos = list_videos(videos_dir)
    with atomic_dir(out_dir) as out:
        return decode_videos(videos, out, config, on_bad_input, cache_dir, progress)
