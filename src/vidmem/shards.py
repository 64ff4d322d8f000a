"""Stage outputs of many videos as a few shard files, not one file per video.

DVC slows down on directory outputs of many files: `dvc commit` of 50,000 per-video files took
11.6 s and `dvc checkout` 5.3 s, the same bytes in 500 shards 2.7 s and 0.5 s (BENCHMARKS.md,
`dvc_layout`). So decode and extract write their per-video results as shards: uncompressed tar
files in the WebDataset layout (member `<stem><suffix>`; `tar tf` lists them, `webdataset`
reads them) of about `SHARD_VIDEOS` (128) videos each, plus `index.json`, which says where each
video's bytes are (shard, offset, size) and their sha256. A stage output of N videos holds
about N / 128 + 2 files (1,000 videos: 6 shards; 1M: 7,860).

Shard boundaries depend on the video names only: a shard ends after a video whose name hashes
to 0 modulo `SHARD_VIDEOS`, or at `4 * SHARD_VIDEOS` videos. The same videos always give the
same shards, byte for byte, and a new video changes only the shard it lands in (a run of
videos named in order of arrival changes only the last shard).

Shards are made from per-video cache entries (vidmem.cache): with a local cache each shard is
a pack in the cache, hard-linked into the output, so the output, DVC's cache and the per-video
cache share one copy of the bytes; otherwise the shard is written in the output directly.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from vidmem.cache import ItemCache, checksum_of
from vidmem.errors import DataError
from vidmem.files import atomic_path, link_or_copy, read_json, write_json
from vidmem.framestore import FrameFormat, decode_item

SHARD_VIDEOS = 128  # videos per shard on average (fewer where the cap cuts a long run)
MAX_SHARD_VIDEOS = 4 * SHARD_VIDEOS
INDEX = "index.json"
INDEX_VERSION = 1
FETCH_THREADS = 16  # entries read ahead while a shard is written (an object store is slow)


def _ends_shard(stem: str) -> bool:
    return int(hashlib.sha256(stem.encode()).hexdigest()[:8], 16) % SHARD_VIDEOS == 0


def plan_shards(stems: Sequence[str]) -> list[list[str]]:
    """Sorted `stems` cut into shards at content-defined boundaries (see the module)."""
    shards: list[list[str]] = [[]]
    for stem in sorted(stems):
        shards[-1].append(stem)
        if _ends_shard(stem) or len(shards[-1]) >= MAX_SHARD_VIDEOS:
            shards.append([])
    return [shard for shard in shards if shard]


def _write_tar(path: Path, members: Sequence[tuple[str, str]], cache: ItemCache,
               names: dict[str, str]) -> list[dict[str, Any]]:
    """An uncompressed tar of the cache entries `members` ((member name, digest) pairs) at
    `path`, with fixed metadata so the same bytes give the same file; returns each member's
    offset, size, checksums and facts. `names` maps a digest to the video it is for, for
    errors."""
    layout = []
    with ThreadPoolExecutor(FETCH_THREADS) as pool, \
            tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        entries = pool.map(cache.entry, [digest for _, digest in members])
        for (name, digest), found in zip(members, entries, strict=True):
            if found is None:
                raise cache.missing(names.get(digest, name))
            data, facts = found
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
            # The data ends where the archive now ends, less its padding to 512-byte blocks.
            offset = tar.offset - -(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            layout.append({"offset": offset, "size": len(data),
                           "checksum": checksum_of(data),
                           "sha256": hashlib.sha256(data).hexdigest(), "facts": facts})
    return layout


def write_shards(out_dir: str | os.PathLike, items: Sequence[tuple[str, str]],
                 cache: ItemCache, names: dict[str, str] | None = None) -> None:
    """Write the entries `items` ((stem, cache digest) pairs) as the shards of a stage output
    in `out_dir`, with its index (written last). `names` maps digests to the videos' file
    names for errors. A scratch cache (cache off) is emptied afterwards."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = cache.fmt.suffix
    digest_of = dict(items)
    names = names or {}
    index: dict[str, Any] = {"version": INDEX_VERSION, "suffix": suffix, "shards": [],
                             "videos": {}}
    for number, stems in enumerate(plan_shards(list(digest_of))):
        shard = f"shard-{number:05d}.tar"
        members = [(f"{stem}{suffix}", digest_of[stem]) for stem in stems]
        if cache.packs:
            pack, layout = cache.pack(
                members, lambda path, members: _write_tar(path, members, cache, names))
            link_or_copy(pack, out_dir / shard)
        else:
            with atomic_path(out_dir / shard, suffix=".tar") as tmp:
                layout = _write_tar(tmp, members, cache, names)
        index["shards"].append(shard)
        for stem, member in zip(stems, layout, strict=True):
            index["videos"][stem] = [shard, member["offset"], member["size"], member["sha256"]]
    if cache.scratch:
        shutil.rmtree(cache.dir, ignore_errors=True)
    write_json(out_dir / INDEX, index)


def write_arrays(out_dir: str | os.PathLike, arrays: Iterable[tuple[str, np.ndarray]],
                 fmt: FrameFormat | None = None) -> int:
    """A sharded output of (stem, array) pairs made in this process (a stage that needs no
    per-video cache, and tests), as `.npy` or frames in `fmt`; returns the number of
    videos."""
    cache = ItemCache(None, "arrays", {}, fmt)
    cache.use_scratch(Path(out_dir) / ".entries")
    items = []
    for stem, array in arrays:
        key = hashlib.sha256(stem.encode()).hexdigest()
        cache.store(key, array)
        items.append((stem, key))
    write_shards(out_dir, items, cache)
    return len(items)


def is_sharded(folder: str | os.PathLike) -> bool:
    return (Path(folder) / INDEX).exists()


class ShardReader:
    """A sharded stage output: `stems()`, and each video's bytes, sha256 and array."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        path = self.folder / INDEX
        if not path.exists():
            raise DataError(f"{path} not found: run the stage that makes {self.folder} first "
                            "(`dvc repro`)")
        try:
            index = read_json(path)
            self.suffix: str = index["suffix"]
            self.videos: dict[str, list] = index["videos"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not a vidmem shard index ({exc}); re-run its stage") from exc

    def stems(self) -> list[str]:
        return sorted(self.videos)

    def __len__(self) -> int:
        return len(self.videos)

    def sha256(self, stem: str) -> str:
        """The content digest of the video's bytes (the next stage's cache key)."""
        return self.videos[stem][3]

    def read(self, stem: str) -> bytes:
        """The video's bytes, checked against the index (DataError naming the shard if not)."""
        if stem not in self.videos:
            raise DataError(f"{self.folder}: no video {stem!r}; re-run the stage that makes it")
        shard, offset, size, sha256 = self.videos[stem]
        path = self.folder / shard
        try:
            with open(path, "rb") as f:
                data = os.pread(f.fileno(), size, offset)
        except OSError as exc:
            raise DataError(f"{path}: cannot read {stem} ({exc}); re-run its stage") from exc
        if hashlib.sha256(data).hexdigest() != sha256:
            raise DataError(f"{path}: the bytes of {stem} do not match {INDEX} (damaged or "
                            "edited); re-run its stage")
        return data

    def load(self, stem: str) -> np.ndarray:
        """The video's array: frames [n, h, w, 3] uint8, or features [frames, dim]."""
        return decode_item(self.read(stem), self.suffix, f"{self.folder}/{stem}{self.suffix}")
