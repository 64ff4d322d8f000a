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

Shards are made from per-video cache entries (vidmem.store.cache): with a local cache each shard is
a pack in the cache, hard-linked into the output, so the output, DVC's cache and the per-video
cache share one copy of the bytes; otherwise the shard is written in the output directly.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from vidmem.core.devices import host_threads
from vidmem.core.errors import DataError
from vidmem.core.files import atomic_path, link_or_copy, read_json, write_json
from vidmem.store.cache import SHA256, ItemCache, checksum_of, open_cache
from vidmem.store.framestore import FrameFormat, decode_item

SHARD_VIDEOS = 128  # videos per shard on average (fewer where the cap cuts a long run)
MAX_SHARD_VIDEOS = 4 * SHARD_VIDEOS
INDEX = "index.json"
INDEX_VERSION = 1
FETCH_THREADS = 16  # entries read ahead while a shard is written (an object store is slow)
COPY_BUFFER = 1 << 22  # bytes per write into a shard (tarfile's default is 16 KiB)


def shard_writers() -> int:
    """Shards written at once: each is its own file, and a writer spends most of its time in
    reads, hashes and writes that let the GIL go, so one writer thread capped a stage whose
    per-video work runs on many processes (normalize of 480 videos on 2 cores: 1.94-2.11 s
    with one, 1.70 s with two, 1.73-1.78 s with four)."""
    return min(4, host_threads())


def _ends_shard(stem: str, videos_in_shard: int) -> bool:
    """Whether the shard that `stem` just made `videos_in_shard` long ends after it: the one
    boundary rule, for `plan_shards` and `ShardWriter` alike."""
    return (int(hashlib.sha256(stem.encode()).hexdigest()[:8], 16) % SHARD_VIDEOS == 0
            or videos_in_shard >= MAX_SHARD_VIDEOS)


def plan_shards(stems: Sequence[str]) -> list[list[str]]:
    """Sorted `stems` cut into shards at content-defined boundaries (see the module)."""
    shards: list[list[str]] = [[]]
    for stem in sorted(stems):
        shards[-1].append(stem)
        if _ends_shard(stem, len(shards[-1])):
            shards.append([])
    return [shard for shard in shards if shard]


def _write_tar(path: Path, members: Sequence[tuple[str, str]], cache: ItemCache,
               names: dict[str, str]) -> list[dict[str, Any]]:
    """An uncompressed tar of the cache entries `members` ((member name, digest) pairs) at
    `path`, with fixed metadata so the same bytes give the same file; returns each member's
    offset, size, checksums and facts. `names` maps a digest to the video it is for, for
    errors."""
    layout = []
    digests = [digest for _, digest in members]
    # An object store answers each request in tens of ms: read ahead in threads. Local files
    # are read in turn (starting threads would cost more than the reads).
    pool = ThreadPoolExecutor(FETCH_THREADS) if cache.entries.slow_reads else None
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT, copybufsize=COPY_BUFFER) as tar:
        entries = pool.map(cache.entry, digests) if pool else map(cache.entry, digests)
        for (name, digest), found in zip(members, entries, strict=True):
            if found is None:
                raise cache.missing(names.get(digest, name))
            data, facts = found
            sha256 = facts.pop(SHA256, None) or hashlib.sha256(data).hexdigest()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
            # The data ends where the archive now ends, less its padding to 512-byte blocks.
            offset = tar.offset - -(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            layout.append({"offset": offset, "size": len(data),
                           "checksum": checksum_of(data, digest),
                           "sha256": sha256, "facts": facts})
    if pool is not None:
        pool.shutdown()
    return layout


class ShardWriter:
    """Writes a stage output's shards while its videos are still being made: `add` each
    video's (stem, cache digest) in sorted order, and each shard is written, on background
    threads (`shard_writers()` shards at once), as soon as its last video is in; `close`
    writes the rest and the index (last). The boundaries are `plan_shards`' exactly. `names`
    maps digests to the videos' file names for errors. A scratch cache (cache off) is emptied
    at `close`."""

    def __init__(self, out_dir: str | os.PathLike, cache: ItemCache,
                 names: dict[str, str] | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.cache = cache
        self.names = names if names is not None else {}
        self.pending: list[tuple[str, str]] = []
        self.last: str | None = None
        # Each shard's file name, its stems, and its writing.
        self.writes: list[tuple[str, list[str], Future]] = []
        self.pool = ThreadPoolExecutor(shard_writers())

    def add(self, stem: str, digest: str) -> None:
        if self.last is not None and stem <= self.last:
            raise ValueError(f"videos must be added in sorted order: {stem!r} after {self.last!r}")
        self.last = stem
        self.pending.append((stem, digest))
        if _ends_shard(stem, len(self.pending)):
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            shard = f"shard-{len(self.writes):05d}.tar"
            stems = [stem for stem, _ in self.pending]
            self.writes.append((shard, stems, self.pool.submit(self._write, shard, self.pending)))
            self.pending = []

    def _write(self, shard: str, items: list[tuple[str, str]]) -> list[dict[str, Any]]:
        suffix = self.cache.fmt.suffix
        members = [(f"{stem}{suffix}", digest) for stem, digest in items]
        if self.cache.packs:
            pack, layout = self.cache.pack(
                members, lambda path, members: _write_tar(path, members, self.cache, self.names))
            link_or_copy(pack, self.out_dir / shard)
            return layout
        with atomic_path(self.out_dir / shard, suffix=".tar") as tmp:
            return _write_tar(tmp, members, self.cache, self.names)

    def abort(self) -> None:
        """Stop without writing the index (the stage failed; its output is discarded)."""
        self.pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._flush()
        index: dict[str, Any] = {"version": INDEX_VERSION, "suffix": self.cache.fmt.suffix,
                                 "shards": [], "videos": {}}
        try:
            for shard, stems, write in self.writes:
                index["shards"].append(shard)
                for stem, member in zip(stems, write.result(), strict=True):
                    index["videos"][stem] = [shard, member["offset"], member["size"],
                                             member["sha256"]]
        finally:
            self.pool.shutdown(cancel_futures=True)
        self.cache.discard()
        write_json(self.out_dir / INDEX, index)


def write_shards(out_dir: str | os.PathLike, items: Sequence[tuple[str, str]],
                 cache: ItemCache, names: dict[str, str] | None = None) -> None:
    """Write the entries `items` ((stem, cache digest) pairs, any order) as the shards of a
    stage output in `out_dir`, with its index (written last)."""
    writer = ShardWriter(out_dir, cache, names)
    for stem, digest in sorted(items):
        writer.add(stem, digest)
    writer.close()


def write_arrays(out_dir: str | os.PathLike, arrays: Iterable[tuple[str, np.ndarray]],
                 fmt: FrameFormat | None = None) -> int:
    """A sharded output of (stem, array) pairs made in this process (a stage that needs no
    per-video cache, and tests), as `.npy` or frames in `fmt`; returns the number of
    videos."""
    cache = open_cache(None, "arrays", {}, fmt, scratch=Path(out_dir) / ".entries")
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

    def read(self, stem: str) -> bytearray:
        """The video's bytes, checked against the index (DataError naming the shard if not)."""
        if stem not in self.videos:
            raise DataError(f"{self.folder}: no video {stem!r}; re-run the stage that makes it")
        try:
            shard, offset, size, sha256 = self.videos[stem]
        except (TypeError, ValueError):
            raise self._bad(stem, "is not [shard, offset, size, sha256]") from None
        # The index is a file like any other: its shard must be a file of this folder, and its
        # offset and size must lie inside that file, before anything is opened or allocated.
        if not isinstance(shard, str) or shard in ("", ".", "..") or Path(shard).name != shard:
            raise self._bad(stem, f"names shard {shard!r}, not a file of {self.folder}")
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                   for n in (offset, size)):
            raise self._bad(stem, f"gives offset {offset!r} and size {size!r}")
        path = self.folder / shard
        try:
            # Non-blocking: a FIFO in a shard's place must not hang the reader.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise DataError(f"{path}: cannot read {stem} ({exc}); re-run its stage") from exc
        try:
            about = os.fstat(fd)
            if not stat.S_ISREG(about.st_mode):
                raise self._bad(stem, f"names {shard}, which is not a regular file")
            if offset + size > about.st_size:
                raise self._bad(stem, f"puts it at bytes {offset}..{offset + size} of {shard}, "
                                      f"which has {about.st_size}")
            # A bytearray, so arrays decoded from it are writable views, not copies.
            data = bytearray(size)
            got = os.preadv(fd, [data], offset)
        except OSError as exc:
            raise DataError(f"{path}: cannot read {stem} ({exc}); re-run its stage") from exc
        finally:
            os.close(fd)
        if got != size or hashlib.sha256(data).hexdigest() != sha256:
            raise DataError(f"{path}: the bytes of {stem} do not match {INDEX} (damaged or "
                            "edited); re-run its stage")
        return data

    def _bad(self, stem: str, what: str) -> DataError:
        return DataError(f"{self.folder / INDEX}: the entry of {stem} {what}; the index is "
                         "damaged or edited: re-run the stage that makes it")

    def load(self, stem: str) -> np.ndarray:
        """The video's array: frames [n, h, w, 3] uint8, or features [frames, dim]."""
        return decode_item(self.read(stem), self.suffix, f"{self.folder}/{stem}{self.suffix}")
