"""A content-addressed cache of per-video results, shared across runs of a stage.

DVC re-runs a whole stage when any input changes, so adding 1% more videos would redo 100% of
the work. Each stage that works video by video therefore keeps its per-video results here,
keyed by the input item's content hash *and* a digest of everything that shapes the result
(the stage's config and a code version). A key can only match an entry made from the same
bytes under the same config, so a stale entry is never reused, and the stage's declared output
is rebuilt from scratch each run (from cache hits and fresh work alike): it is exactly what an
uncached run would write. This is the TF-for-Poets bottleneck cache, made safe.

Entries start loose (one file each, what workers write) and end up in packs: when a stage
writes its output shards (vidmem.store.shards), each shard is made here as a pack and hard-linked
into the output, and the loose entries it holds are deleted. So the cache, the stage output and
DVC's cache (which links too, `.dvc/config`) share one copy of the bytes, and later runs find
their hits inside the packs.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidmem.core.errors import VidmemError
from vidmem.core.files import atomic_path, file_digest, read_json, write_bytes, write_json
from vidmem.core.params import is_url
from vidmem.store.framestore import FrameFormat, encode_frames

CHECKSUM = "_crc32"  # key of an entry's checksum in its facts JSON
SHA256 = "_sha256"  # key of its sha256 (the content digest the output's index lists)
PACKS = "packs"


def checksum_of(data: bytes) -> str:
    """Size and CRC-32 of an entry's bytes, enough to tell a damaged entry from an intact one."""
    return f"{len(data)}:{zlib.crc32(data):08x}"


def config_digest(config: dict[str, Any]) -> str:
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class ItemCache:
    """Arrays stored as `<root>/<namespace>/<config digest>/<item digest>.<suffix>`, in `fmt`
    (`.npy` arrays, or frames as image strips: vidmem.store.framestore), each with a small JSON of
    facts about how it was made (so a cache hit reports the same as fresh work) and the entry's
    checksum; or inside packs, `<...>/packs/<pack digest>.tar` with a JSON of their members.

    `root` is a local folder, or an fsspec URL (`s3://bucket/prefix`) that workers on other
    machines share. Locally an entry is written under a temporary name and renamed. At a URL
    the data object is uploaded first and the facts JSON last: an object store writes each
    object whole, and an entry without its JSON (a writer killed in between) is a miss, so no
    reader ever sees half an entry. Packs are local only.

    `root` None turns the cache off: nothing is looked up, and a stage gives the cache a
    scratch folder (`use_scratch`) for its results until they are written into its output.
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
        self.scratch = False
        self._packed: dict[str, tuple[Path, int, int, str, dict[str, Any]]] | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """What a worker process gets: no lock, and the pack listing is read there anew."""
        return {**self.__dict__, "_lock": None, "_packed": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    @property
    def packs(self) -> bool:
        """Whether shards are made here as packs (a local cache that is on)."""
        return self.enabled and self.remote is None

    def use_scratch(self, folder: str | os.PathLike) -> None:
        """With the cache off: keep entries in `folder` (inside the output being built) until
        the stage has written them into its shards."""
        if not self.enabled:
            self.dir = Path(folder).absolute()
            self.scratch = True

    def key(self, item: str | os.PathLike) -> str:
        """The content key of an input file: its digest when the cache is on; with the cache
        off nothing is looked up, so the (whole-file) hashing is skipped and the key only tells
        items apart."""
        if self.enabled:
            return file_digest(item)
        return hashlib.sha256(str(Path(item).absolute()).encode()).hexdigest()

    def _path(self, item_digest: str) -> Path:
        return self.dir / f"{item_digest}{self.fmt.suffix}"

    # --- reading ----------------------------------------------------------------------

    def entry(self, item_digest: str) -> tuple[bytes, dict[str, Any]] | None:
        """The bytes and facts of an intact entry, loose or packed; None if there is none.
        A damaged loose entry is deleted (a miss, recomputed and rewritten). The facts hold the
        bytes' sha256 under `SHA256` when it was recorded."""
        if self.remote is not None:
            return self._entry_remote(item_digest)
        path = self._path(item_digest)
        facts_path = path.with_suffix(".json")
        try:
            facts = json.loads(facts_path.read_text())
            data = path.read_bytes()
        except (OSError, ValueError):
            pass
        else:
            # Whole entries are written atomically, but a damaged one is a miss, not an error:
            # its bytes must match the checksum recorded when it was stored.
            # (A scratch entry was written moments ago by this very stage: not checked again.)
            if isinstance(facts, dict) and (facts.pop(CHECKSUM, None) == checksum_of(data)
                                            or self.scratch):
                return data, facts
            path.unlink(missing_ok=True)
        return self._packed_entry(item_digest) if self.enabled else None

    def _entry_remote(self, item_digest: str) -> tuple[bytes, dict[str, Any]] | None:
        try:
            facts = json.loads(self.remote.cat_file(f"{self.dir}/{item_digest}.json"))
            data = self.remote.cat_file(f"{self.dir}/{item_digest}{self.fmt.suffix}")
        except (FileNotFoundError, ValueError):
            return None
        if facts.pop(CHECKSUM, None) != checksum_of(data):
            return None  # damaged or half-replaced: recompute (the rewrite replaces it)
        return data, facts

    def _pack_index(self) -> dict[str, tuple[Path, int, int, str, dict[str, Any]]]:
        """Where each packed entry is: digest → (pack, offset, size, checksum, facts)."""
        with self._lock:  # worker threads look up at once; the listing is read once
            if self._packed is None:
                packed = {}
                folder = self.dir / PACKS
                for listing in sorted(folder.glob("*.json")) if folder.is_dir() else []:
                    try:
                        members = read_json(listing)["members"]
                    except (OSError, ValueError, KeyError, TypeError):
                        continue  # a damaged listing only costs its entries (recomputed)
                    for _, digest, m in members:
                        packed[digest] = (listing.with_suffix(".tar"), m["offset"], m["size"],
                                          m["checksum"], {**m["facts"], SHA256: m["sha256"]})
                self._packed = packed
            return self._packed

    def _packed_entry(self, item_digest: str) -> tuple[bytes, dict[str, Any]] | None:
        found = self._pack_index().get(item_digest)
        if found is None:
            return None
        pack, offset, size, checksum, facts = found
        try:
            with open(pack, "rb") as f:
                data = os.pread(f.fileno(), size, offset)
        except OSError:
            return None
        return (data, dict(facts)) if checksum_of(data) == checksum else None

    def fetch(self, item_digest: str) -> dict[str, Any] | None:
        """The facts of an intact entry (a hit), or None: a miss, or the cache is off."""
        if not self.enabled:
            return None
        found = self.entry(item_digest)
        if found is None:
            return None
        self.hits += 1
        found[1].pop(SHA256, None)
        return found[1]

    def fetch_or_make(self, item_digest: str,
                      make: Callable[[], tuple[np.ndarray, dict[str, Any]]],
                      ) -> tuple[dict[str, Any], bool]:
        """The facts of the entry for `item_digest`, made by `make()` -> (array, facts) and
        stored on a miss; and whether it was a hit."""
        facts = self.fetch(item_digest)
        if facts is not None:
            return facts, True
        array, facts = make()
        self.store(item_digest, array, facts)
        return facts, False

    # --- writing ----------------------------------------------------------------------

    def store(self, item_digest: str, array: np.ndarray,
              facts: dict[str, Any] | None = None) -> None:
        """Save `array` as a loose entry, with `facts`."""
        if self.remote is not None:
            data = encode_frames(array, self.fmt)
            self.remote.pipe_file(f"{self.dir}/{item_digest}{self.fmt.suffix}", data)
            self.remote.pipe_file(f"{self.dir}/{item_digest}.json", json.dumps(
                {**(facts or {}), CHECKSUM: checksum_of(data)}).encode())
            return
        if not (self.enabled or self.scratch):
            raise ValueError("nowhere to store: the cache is off and has no scratch folder "
                             "(use_scratch)")
        path = self._path(item_digest)
        data = encode_frames(array, self.fmt)
        write_bytes(path, data)
        # The sha256 is taken here, in the worker threads, rather than by the one thread that
        # later writes the shards.
        write_json(path.with_suffix(".json"), {**(facts or {}), CHECKSUM: checksum_of(data),
                                               SHA256: hashlib.sha256(data).hexdigest()})

    def pack(self, members: Sequence[tuple[str, str]],
             write: Callable[[Path, Sequence[tuple[str, str]]], list[dict[str, Any]]],
             ) -> tuple[Path, list[dict[str, Any]]]:
        """The pack holding `members` ((name in the pack, entry digest) pairs, in order) and
        each member's layout (offset, size, checksum, facts, ...): an intact pack from an
        earlier run, or a new one made by `write(path, members)`, which returns the layout.
        The loose entries a new pack holds are deleted: the pack is their copy now."""
        key = hashlib.sha256(json.dumps(list(members)).encode()).hexdigest()[:32]
        path = self.dir / PACKS / f"{key}.tar"
        listing = path.with_suffix(".json")
        if path.exists() and listing.exists():
            try:
                about = read_json(listing)
                with open(path, "rb") as f:
                    intact = checksum_of(f.read()) == about["checksum"]
            except (OSError, ValueError, KeyError, TypeError):
                intact = False
            if intact:
                self._drop_loose(members)
                return path, [m for _, _, m in about["members"]]
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".tar") as tmp:
            layout = write(tmp, members)
            checksum = checksum_of(tmp.read_bytes())
        write_json(listing, {"checksum": checksum, "members": [
            [name, digest, m] for (name, digest), m in zip(members, layout, strict=True)]})
        self._drop_loose(members)
        with self._lock:
            self._packed = None  # listed anew on the next lookup
        return path, layout

    def _drop_loose(self, members: Sequence[tuple[str, str]]) -> None:
        """Delete the loose copies of entries that a pack holds."""
        for _, digest in members:
            self._path(digest).unlink(missing_ok=True)
            self._path(digest).with_suffix(".json").unlink(missing_ok=True)

    def missing(self, item: str) -> VidmemError:
        """The error for an entry a worker reported stored that is not there intact."""
        return VidmemError(f"{item}: a worker reported its result stored in the cache "
                           f"({self.dir}), but the entry is missing or damaged; check that "
                           "every worker sees the same cache.dir, then re-run")

