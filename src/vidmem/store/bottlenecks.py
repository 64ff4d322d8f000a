"""The TF-for-Poets bottleneck text format, as retrain.py wrote it.

One text file per frame, one line of comma-joined floats, no trailing newline, named
`<something>.jpg_inception_v3.txt`. The poets backend writes such files (its per-frame cache and
its extract output, `<stem>/frame000.jpg_inception_v3.txt`, ...); the concat stage reads them
("concat bottlenecks") without loading the backend.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vidmem.core.errors import DataError

BOTTLENECK_SUFFIX = ".jpg_inception_v3.txt"


def format_bottleneck(values: np.ndarray) -> str:
    """retrain.py's bottleneck text: comma-joined floats on one line, no trailing newline
    (plain floats: the repr of a NumPy scalar would print 'np.float32(...)')."""
    return ",".join(str(float(v)) for v in values)


def parse_bottleneck(text: str, dim: int | None = None) -> np.ndarray | None:
    """The values of a bottleneck file, or None if it is truncated or not all floats."""
    try:
        values = np.array([float(v) for v in text.split(",")], np.float32)
    except ValueError:
        return None
    return values if dim is None or len(values) == dim else None


def frame_file_name(index: int) -> str:
    return f"frame{index:03d}{BOTTLENECK_SUFFIX}"


def write_video_bottlenecks(folder: Path, rows: np.ndarray,
                            sources: Sequence[Path | None]) -> None:
    """A folder holding one bottleneck text file per frame. Where the backend's per-frame cache
    holds the file already (`sources[k]`), it is copied: the same bytes, without formatting 2,048
    floats a second time (1.4 ms a frame). Copies, not hard links: these files are small, and a
    text file is easy to edit in place, which through a link would silently alter the cache."""
    folder.mkdir(exist_ok=True)
    for k, (row, source) in enumerate(zip(rows, sources, strict=True)):
        target = folder / frame_file_name(k)
        if source is not None:
            shutil.copyfile(source, target)
        else:
            target.write_text(format_bottleneck(row))


def read_video_bottlenecks(folder: Path) -> np.ndarray:
    """float32 [frames, dim] from a folder of per-frame bottleneck files, or DataError naming the
    bad file."""
    files = sorted(folder.glob(f"*{BOTTLENECK_SUFFIX}")) if folder.is_dir() else []
    if not files:
        raise DataError(f"{folder}: no bottleneck files; re-run the extract stage")
    rows: list[np.ndarray] = []
    for file in files:
        try:
            text = file.read_text()
        except (OSError, UnicodeDecodeError):
            text = ""
        row = parse_bottleneck(text)
        if row is None or (rows and len(row) != len(rows[0])):
            raise DataError(f"{file}: truncated or corrupt bottleneck file; re-run the extract "
                            "stage (`dvc repro -f -s extract@<backend>`)")
        rows.append(row)
    return np.stack(rows)
