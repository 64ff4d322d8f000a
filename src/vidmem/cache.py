"""A content-addressed cache of per-video results, shared across runs of a stage.

DVC re-runs a whole stage when any input changes, so adding 1% more videos would redo 100% of
the work. Each stage that works video by video therefore keeps its per-video results here,
keyed by the input item's content hash *and* a digest of everything that shapes the result
(the stage's config and a code version). A key can only match an entry made from the same
bytes under the same config, so a stale entry is never reused, and the stage's declared output
is rebuilt from scratch each run (from cache hits and fresh work alike): it is exactly what an
uncached run would write. This is the TF-for-Poets bottleneck cache, made safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vidmem.errors import DataError, VidmemError
from vidmem.files import file_digest, link_or_copy, write_bytes, write_json
from vidmem.framestore import FrameFormat, encode_frames, load_frames, save_frames
from vidmem.params import is_url

CHECKSUM = "_crc32"  # key of an entry's checksum in its facts JSON


def _checksum_of(data: bytes) -> str:
    """Size and CRC-32 of an entry's bytes, enough to tell a damaged entry from an intact one."""
    return f"{len(data)}:{zlib.crc32(data):08x}"


def _checksum(path: Path) -> str:
    return _checksum_of(path.read_bytes())


def config_digest(config: dict[str, Any]) -> str:
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class ItemCache:
    """Arrays stored as `<root>/<namespace>/<config digest>/<item digest>.<suffix>`, in `fmt`
    (`.npy` arrays, or frames as image strips: vidmem.framestore), each with a small JSON of
    facts about how it was made (so a cache hit reports the same as fresh work) and the entry's
    checksum.

    `root` is a local folder, or an fsspec URL (`s3://bucket/prefix`) that workers on other
    machines share. Locally an entry is written under a temporary name and renamed, and is hard
    linked into the stage output. At a URL the data object is uploaded first and the facts
    JSON last: an object store writes each object whole, and an entry without its JSON (a
    writer killed in between) is a miss, so no reader ever sees half an entry.
    """

    def __init__(self, root: str | os.PathLike | None, namespace: str, config: dict[str, Any],
                 fmt: FrameFormat | None = None):
        self.enabled = root is not None
        self.fmt = fmt or FrameFormat("npy")
        digest = config_digest({**config, "format": [self.fmt.kind, self.fmt.quality]}
                               if fmt else config)
        self.remote = None
        if self.enabled and is_url(root):
            import fsspec  # only for URL caches (s3fs etc. come with dvc-s3)

            # A fresh client per cache: fsspec's instance cache would keep one bound to the
            # endpoint and credentials of the moment it was first made.
            self.remote, base = fsspec.core.url_to_fs(str(root), skip_instance_cache=True)
            self.dir = f"{base.rstrip('/')}/{namespace}/{digest}"
        else:
            # Absolute, so workers in other processes find the same folder.
            self.dir = Path(root or ".").absolute() / namespace / digest
        self.hits = 0

    def key(self, item: str | os.PathLike) -> str:
        """The content key of an input file: its digest when the cache is on; with the cache
        off nothing is looked up, so the (whole-file) hashing is skipped."""
        return file_digest(item) if self.enabled else ""

    def _path(self, item_digest: str) -> Path:
        return self.dir / f"{item_digest}{self.fmt.suffix}"

    def fetch(self, item_digest: str,
              destination: str | os.PathLike | None = None) -> dict[str, Any] | None:
        """The facts of an intact entry, placing its array at `destination` when one is given
        (without one, only whether the entry is there and intact); None on a miss."""
        if not self.enabled:
            return None
        if self.remote is not None:
            return self._fetch_remote(item_digest, destination)
        path = self._path(item_digest)
        facts_path = path.with_suffix(".json")
        if path.exists() and facts_path.exists():
            try:
                # Whole entries are written atomically, but a damaged one is a miss, not an
                # error: its bytes must match the checksum recorded when it was stored (reading
                # them is far cheaper than decoding a compressed frames file).
                facts = json.loads(facts_path.read_text())
                stored = facts.pop(CHECKSUM, None)
                if stored is None:
                    load_frames(path)  # an entry from before checksums: decode it to check
                elif stored != _checksum(path):
                    raise DataError(f"{path}: checksum mismatch")
            except (DataError, ValueError, OSError):
                path.unlink(missing_ok=True)
            else:
                if destination is not None:
                    link_or_copy(path, destination)
                self.hits += 1
                return facts
        return None

    def fetch_or_make(self, item_digest: str, destination: str | os.PathLike | None,
                      make: Callable[[], tuple[np.ndarray, dict[str, Any]]],
                      ) -> tuple[dict[str, Any], bool]:
        """The facts of the entry for `item_digest` placed at `destination` (None: in the cache
        only), made by `make()` -> (array, facts) and stored on a miss; and whether it was a
        hit."""
        facts = self.fetch(item_digest, destination)
        if facts is not None:
            return facts, True
        array, facts = make()
        self.store(item_digest, array, destination, facts)
        return facts, False

    def place(self, item_digest: str, destination: str | os.PathLike, item: str) -> None:
        """Put the entry a worker elsewhere reported stored at `destination` (VidmemError if
        it is not there intact: the worker saw another cache)."""
        if self.fetch(item_digest, destination) is None:
            raise VidmemError(f"{item}: a worker reported its result stored in the cache "
                              f"({self.dir}), but the entry is missing or damaged; check that "
                              "every worker sees the same cache.dir, then re-run")

    def _fetch_remote(self, item_digest: str,
                      destination: str | os.PathLike | None) -> dict[str, Any] | None:
        data_key = f"{self.dir}/{item_digest}{self.fmt.suffix}"
        try:
            facts = json.loads(self.remote.cat_file(f"{self.dir}/{item_digest}.json"))
            data = self.remote.cat_file(data_key)
        except (FileNotFoundError, ValueError):
            return None
        if facts.pop(CHECKSUM, None) != _checksum_of(data):
            return None  # damaged or half-replaced: recompute (the rewrite replaces it)
        if destination is not None:
            write_bytes(destination, data)
        self.hits += 1
        return facts

    def store(self, item_digest: str, array: np.ndarray,
              destination: str | os.PathLike | None = None,
              facts: dict[str, Any] | None = None) -> None:
        """Save `array` into the cache (with `facts`) when enabled, and at `destination` when
        one is given (a worker of another executor stores into the cache only)."""
        if not self.enabled:
            if destination is None:
                raise ValueError("nowhere to store: the cache is off and no destination given")
            save_frames(destination, array, self.fmt)
        elif self.remote is not None:
            data = encode_frames(array, self.fmt)
            if destination is not None:
                write_bytes(destination, data)
            self.remote.pipe_file(f"{self.dir}/{item_digest}{self.fmt.suffix}", data)
            self.remote.pipe_file(f"{self.dir}/{item_digest}.json", json.dumps(
                {**(facts or {}), CHECKSUM: _checksum_of(data)}).encode())
        else:
            path = self._path(item_digest)
            save_frames(path, array, self.fmt)
            write_json(path.with_suffix(".json"), {**(facts or {}), CHECKSUM: _checksum(path)})
            if destination is not None:
                link_or_copy(path, destination)
