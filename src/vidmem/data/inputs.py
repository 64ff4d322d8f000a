"""The scan stage's manifest of a data set's inputs, so that DVC never hashes them itself.

DVC hashes every dependency of a stage before the stage starts. Handed the videos folder raw, its
hasher blocks forever on a FIFO named like a video; handed `data.captions: null`, it crashes.
So the stages that read videos, labels or captions depend on one manifest instead, written by a
scan stage that DVC runs every time (`always_changed`): each regular file with its size and
sha256, the hash taken again only when the file's size, mtime, ctime or inode moved (a memo in
the per-video cache folder, as DVC keeps its own state database), and every other entry named
with what it is, never opened. A stage re-runs exactly when a byte of what it reads changed.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vidmem.core.errors import DataError, VidmemError
from vidmem.core.files import file_digest, write_json
from vidmem.core.params import is_url
from vidmem.video.listing import VIDEO_EXTENSIONS, check_inside_folder, entry_kind, list_videos

MEMO_NAME = "inputs-memo.json"  # in cache.dir: path → (stat facts, sha256)


def _stat_key(about: os.stat_result) -> list[int]:
    """What moves when a file's bytes may have: size, mtime, ctime (which no tool can set back),
    inode and device."""
    return [about.st_size, about.st_mtime_ns, about.st_ctime_ns, about.st_ino, about.st_dev]


class _Hasher:
    """sha256 of regular files, reusing the memo's digest while a file's stat facts are
    unchanged; the memo is rewritten (atomically) with exactly the files hashed this run."""

    def __init__(self, memo_path: Path | None) -> None:
        self.memo_path = memo_path
        self.memo: dict[str, list[Any]] = {}
        if memo_path is not None and memo_path.is_file():
            try:
                loaded = json.loads(memo_path.read_text())
                self.memo = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self.memo = {}  # a damaged memo only costs hashing again
        self.seen: dict[str, list[Any]] = {}
        self.hashed = 0

    def digests(self, paths: list[Path], progress: bool) -> list[tuple[int, str]]:
        """(size, sha256) of each path, in order."""
        todo: list[tuple[int, str, Path, list[int]]] = []
        found: list[tuple[int, str] | None] = []
        for i, path in enumerate(paths):
            about = path.stat()
            key, facts = str(path.resolve()), _stat_key(about)
            known = self.seen.get(key) or self.memo.get(key)
            if isinstance(known, list) and len(known) == 2 and known[0] == facts:
                found.append((about.st_size, known[1]))
                self.seen[key] = known
            else:
                found.append(None)
                todo.append((i, key, path, facts))
        # hashlib releases the GIL on large reads: a few threads keep the disk busy.
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            bar = tqdm(total=len(todo), desc="scan: hashing", unit="file", disable=not progress)
            for (i, key, path, facts), digest in zip(
                    todo, pool.map(lambda item: file_digest(item[2]), todo), strict=True):
                if _stat_key(path.stat()) != facts:
                    raise DataError(f"{path} changed while it was hashed: run `dvc repro` again "
                                    "once nothing writes to the data set's folders")
                found[i] = (facts[0], digest)
                self.seen[key] = [facts, digest]
                bar.update()
            bar.close()
        self.hashed += len(todo)
        return [entry for entry in found if entry is not None]

    def save(self) -> None:
        if self.memo_path is not None:
            self.memo_path.parent.mkdir(parents=True, exist_ok=True)
            write_json(self.memo_path, self.seen)


def _files_under(root: Path, skip: Path | None) -> Iterator[tuple[Path, str | None]]:
    """Every entry below `root` (links to folders not followed) with what it is (None: a regular
    file), except video files and the videos folder: videos reach the pipeline through
    `data.videos_dir` alone (a release folder such as MediaEval 2021's holds both)."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        if skip is not None:
            dirs[:] = [d for d in dirs if Path(folder, d).resolve() != skip]
        for name in sorted(files) + [d for d in dirs if Path(folder, d).is_symlink()]:
            path = Path(folder, name)
            if path.suffix.lower() not in VIDEO_EXTENSIONS:
                yield path, entry_kind(path)


def _scan_path(path_text: str, key: str, hasher: _Hasher, skip: Path | None,
               progress: bool) -> dict[str, Any]:
    """The manifest section of a labels or captions path (a file, or a release folder)."""
    path = Path(path_text)
    if not path.exists():
        raise DataError(f"{key}: {path_text} not found; point '{key}' in params.yaml at it "
                        "(docs/datasets.md)")
    kind = entry_kind(path)
    if kind is None:
        entries: list[tuple[Path, str | None]] = [(path, None)]
    elif path.is_dir():
        entries = list(_files_under(path, skip))
    else:
        raise DataError(f"{key}: {path_text} is {kind}, not a file or folder: not opened")
    regular = [p for p, k in entries if k is None]
    digests = hasher.digests(regular, progress)
    return {"path": path_text,
            "files": [{"name": p.relative_to(path).as_posix() if p != path else p.name,
                       "size": size, "sha256": digest}
                      for p, (size, digest) in zip(regular, digests, strict=True)],
            "not_opened": [{"entry": p.relative_to(path).as_posix(), "reason": k}
                           for p, k in entries if k is not None]}


def scan_inputs(videos_dir: str, ground_truth: str, captions: str | None,
                cache_dir: str | None = None, progress: bool = True,
                folds_file: str | None = None) -> dict[str, Any]:
    """The manifest: the videos folder (regular files hashed; FIFOs, sockets, devices, folders
    and links out of the folder named, not opened; other names ignored), the labels, the
    captions (None: none) and the cross-validation folds file when one is set. Deterministic:
    the same bytes give the same manifest."""
    memo = (Path(cache_dir) / MEMO_NAME
            if cache_dir is not None and not is_url(cache_dir) else None)
    hasher = _Hasher(memo)
    videos, not_opened = [], []
    for video in list_videos(videos_dir):
        try:
            check_inside_folder(video)
        except VidmemError as error:
            not_opened.append({"entry": video.name, "reason": str(error)})
        else:
            videos.append(video)
    digests = hasher.digests(videos, progress)
    skip = Path(videos_dir).resolve()
    manifest = {
        "videos": {"path": videos_dir,
                   "files": [{"name": v.name, "size": size, "sha256": digest}
                             for v, (size, digest) in zip(videos, digests, strict=True)],
                   "not_opened": not_opened,
                   "ignored": sorted(p.name for p in Path(videos_dir).iterdir()
                                     if p.suffix.lower() not in VIDEO_EXTENSIONS)},
        "ground_truth": _scan_path(ground_truth, "data.ground_truth", hasher, skip, progress),
        "captions": (None if captions is None
                     else _scan_path(captions, "data.captions", hasher, skip, progress)),
    }
    if folds_file is not None:  # only when set, so that a run without one keeps its manifest
        manifest["cv_folds"] = _scan_path(folds_file, "cv.folds_file", hasher, skip, progress)
    hasher.save()
    manifest["hashed"] = hasher.hashed  # not part of the manifest's identity: see write_manifest
    return manifest


def write_manifest(path: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """The manifest without the run's own counts, so that an unchanged data set writes the same
    bytes (and DVC re-runs nothing downstream)."""
    write_json(path, {key: value for key, value in manifest.items() if key != "hashed"})


def manifest_roots(manifest: dict[str, Any]) -> list[str]:
    """The paths a manifest stands for (a stage that depends on it may read below them)."""
    return [section["path"] for section in (manifest["videos"], manifest["ground_truth"],
                                            manifest["captions"], manifest.get("cv_folds"))
            if section is not None]
