"""Which entries of a videos folder are videos, and which may be opened: light (no ffmpeg, no
torch), so the scan stage that DVC runs every time starts in a fraction of a second."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from vidmem.core.errors import DataError, VideoError

VIDEO_EXTENSIONS = (".webm", ".mp4", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv",
                    ".gif")


def list_videos(videos_dir: str | os.PathLike) -> list[Path]:
    """Every entry directly in `videos_dir` whose name has a video extension, sorted by name,
    whatever it is: a file, a link, but also a FIFO, socket, device or folder so named, which
    decode then reports as skipped with the reason (`check_inside_folder`) instead of leaving
    it out without a word. Entries with other names are `ignored_entries`."""
    videos_dir = Path(videos_dir)
    if not videos_dir.is_dir():
        raise DataError(f"videos folder {videos_dir} not found: check 'data.videos_dir' in "
                        "params.yaml")
    videos = sorted(p for p in videos_dir.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
    stems: dict[str, Path] = {}
    for video in videos:
        if video.stem in stems:
            raise DataError(f"{videos_dir}: {stems[video.stem].name} and {video.name} have the "
                            "same name stem; outputs are keyed by stem, so rename one")
        stems[video.stem] = video
    return videos


def ignored_entries(videos_dir: str | os.PathLike) -> list[dict[str, str]]:
    """The entries of `videos_dir` that `list_videos` leaves out, each with why, so the decode
    report accounts for every entry of the folder."""
    return [{"entry": p.name, "reason": f"not a video name (extensions: "
                                        f"{' '.join(VIDEO_EXTENSIONS)})"}
            for p in sorted(Path(videos_dir).iterdir())
            if p.suffix.lower() not in VIDEO_EXTENSIONS]


def entry_kind(path: Path) -> str | None:
    """None for a regular file (a link to one included); else what the entry is, in words."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return "a link to nothing"
    if stat.S_ISREG(mode):
        return None
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a regular file"


def check_inside_folder(video: Path) -> None:
    """VideoError unless `video` is a regular file of its own folder: a symbolic link in the
    videos folder that points elsewhere (`/etc/passwd`, `/dev/zero`, another project) is
    refused before anything reads it, and so is a FIFO, socket, device or folder (opening a
    FIFO would block). The folder itself may be a link."""
    if video.is_symlink() and video.resolve().parent != video.parent.resolve():
        raise VideoError(video.name, f"symbolic link to {os.readlink(video)}, outside the videos "
                                     "folder; copy the file into the folder or link its folder "
                                     "as data.videos_dir instead")
    if not video.is_file():
        raise VideoError(video.name, f"{entry_kind(video)}, not a regular file: not opened")
