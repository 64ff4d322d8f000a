"""Atomic file output and safe path handling.

Every output is written to a temporary sibling and renamed into place, so an interrupted stage
(Ctrl-C, kill -9) never leaves a half-written file that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vidmem.core.errors import DataError, VidmemError

# mkstemp creates files as 0600; outputs should get the usual permissions instead.
_UMASK = os.umask(0)
os.umask(_UMASK)


def video_key(video: str) -> str:
    """The one video-id convention: a video is named by its file name (`video10.webm`, as labels,
    captions, splits and predictions name it), and everything stored per video, or matched
    between sources that may not know the extension (precomputed feature files, predict's
    columns), is keyed by that name's stem (`video10`; stems are unique in a videos folder:
    vidmem.video.listing.list_videos)."""
    return Path(video).stem


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "",
                read_only: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.
    `read_only`: the file is made read-only first (cache entries, as DVC's own cache files)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, (0o444 if read_only else 0o666) & ~_UMASK)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes, read_only: bool = False) -> None:
    with atomic_path(path, read_only=read_only) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}

# NumPy parses a .npy header with ast.literal_eval, and CPython 3.11 keeps the AST builder's
# recursion count per interpreter, not per thread: two threads parsing at once can fail with
# "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905; CI met it in
# extract's loader threads). vidmem's header reads take turns; a forked child gets a new lock,
# as the thread that held this one at the fork does not exist there.
_npy_header_lock = threading.Lock()


def _new_npy_header_lock() -> None:
    global _npy_header_lock
    _npy_header_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_npy_header_lock)


@dataclass(frozen=True)
class NpyHeader:
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int  # where the data starts

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    def shaped(self, flat: np.ndarray) -> np.ndarray:
        """The header's `count` values in `flat` as the array it describes (a view)."""
        return flat.reshape(self.shape, order="F" if self.fortran_order else "C")


def checked_npy_header(f: Any, size: int) -> NpyHeader:
    """The header of the `.npy` bytes at `f`'s position (a binary file or BytesIO; left at the
    data), checked against their `size` in all (a damaged or crafted header claiming a huge
    shape would otherwise make NumPy allocate that much memory before it notices the data is
    missing); safe from several threads at once. ValueError for a damaged header, a format
    version NumPy does not write, object arrays, or data of another size than claimed."""
    version = np.lib.format.read_magic(f)
    if version not in _NPY_HEADERS:
        raise ValueError(f"unsupported .npy format version {version}")
    with _npy_header_lock:
        shape, fortran_order, dtype = _NPY_HEADERS[version](f)
    if dtype.hasobject:
        raise ValueError("holds Python objects, not numbers")
    header = NpyHeader(tuple(shape), dtype, bool(fortran_order), f.tell())
    claimed, held = header.count * dtype.itemsize, size - header.offset
    if claimed != held:
        raise ValueError(f"its header claims shape {list(shape)} ({claimed} bytes) but "
                         f"it holds {held} bytes of data")
    return header


def load_npy_header(path: str | os.PathLike) -> NpyHeader:
    """An `.npy` file's shape, dtype and data offset, checked (`checked_npy_header`); DataError
    naming the file."""
    try:
        with open(path, "rb") as f:
            return checked_npy_header(f, os.fstat(f.fileno()).st_size)
    except (ValueError, EOFError, OSError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from exc


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """An `.npy` array, its header checked first, from one open of the file; DataError naming
    the file."""
    try:
        with open(path, "rb") as f:
            header = checked_npy_header(f, os.fstat(f.fileno()).st_size)
            # The data as the header says, not np.load: that would parse the header again.
            flat = np.fromfile(f, dtype=header.dtype, count=header.count)
    except (ValueError, EOFError, OSError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from exc
    return header.shaped(flat)


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    with atomic_path(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory under a temporary name and swap it in whole when the block succeeds.

    A stage that writes a directory output therefore either leaves the previous complete
    directory or the new complete one, never a mix.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A killed run (kill -9) leaves its temporary directory behind: it never looked like the
    # output, and the next run of the same stage clears it.
    for leftover in target.parent.glob(f".{target.name}.*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Place `src` at `dst` by hard link when possible (files are only ever replaced, never
    edited in place, so sharing an inode is safe), else by copy."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def safe_child(root: str | os.PathLike, name: str, what: str = "file name") -> Path:
    """Return root/name, refusing names that could point outside `root`.

    Names from data files (ground truth, captions) must be plain file names: no directory
    parts, no absolute paths, no '..'. This keeps a crafted CSV from reading or writing
    outside the data folder.
    """
    if not isinstance(name, str) or not name or name.strip() != name:
        raise DataError(f"invalid {what} {name!r}: expected a plain file name such as 'video10.webm'")
    if name in (".", "..") or "/" in name or "\\" in name or "\x00" in name or os.path.isabs(name):
        raise DataError(
            f"{what} {name!r} escapes the data folder {str(root)!r}: names must be plain file "
            "names (no '/', '\\', '..' or absolute paths); fix the row in the data file"
        )
    return Path(root) / name


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} not found: run the stage that writes it first (`dvc repro`)")
    return json.loads(path.read_text(encoding="utf-8"))


def check_pinned_digest(path: str | os.PathLike, expected: str | None, what: str) -> str:
    """The file's sha256; VidmemError naming the file and both digests when params pin another
    (`expected`; None: not pinned, nothing refused)."""
    actual = file_digest(path)
    if expected is not None and actual != expected.lower():
        raise VidmemError(f"{what} {path} has sha256 {actual}, but params pin {expected}: the "
                          "file is not the one pinned. Fetch or reinstall it from a source you "
                          "trust, or update the pin if the new file is the right one")
    return actual
