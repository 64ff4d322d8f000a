"""A content-addressed cache of per-video results, shared across runs of a stage.

DVC re-runs a whole stage when any input changes, so adding 1% more videos would redo 100% of
the work. Each stage that works video by video therefore keeps its per-video results here,
keyed by the input item's content hash *and* a digest of everything that shapes the result
(the stage's config and a code version). A key can only match an entry made from the same
bytes under the same config, so a stale entry is never reused, and the stage's declared output
is rebuilt from scratch each run (from cache hits and fresh work alike): it is exactly what an
uncached run would write. This is the TF-for-Poets bottleneck cache, made safe.

Where the entries live is a store behind one small interface (`EntryStore`): `LocalStore`
(a folder: loose entries, then packs), `FsspecStore` (an object store every worker reaches,
`s3://...`) and `ScratchStore` (the cache is off: the stage's own results wait inside the
output being built, and nothing is looked up). `open_cache` picks one; `ItemCache` adds the
keys, encoding and hit count on top and does not know which it has.

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
import shutil
import threading
import warnings
import zlib
from abc import ABC, abstractmethod
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


def checksum_of(data: bytes, key: str = "") -> str:
    """Size and CRC-32 of an entry's bytes, enough to tell a damaged entry from an intact one.
    With the entry's `key` (its cache digest) folded in, an entry's bytes and facts copied to
    another key (an edited pack listing, a copied object in a shared bucket) fail the check
    there: a cache entry only ever serves the key it was stored for."""
    return f"{len(data)}:{zlib.crc32(data, zlib.crc32(key.encode())):08x}"


def config_digest(config: dict[str, Any]) -> str:
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


Entry = tuple[bytes, dict[str, Any]]  # an entry's bytes and the facts stored with it
PackWriter = Callable[[Path, Sequence[tuple[str, str]]], list[dict[str, Any]]]


class EntryStore(ABC):
    """Where one stage's per-video entries live: `<digest><suffix>` bytes, each with a JSON of
    facts holding their checksum. Entries are written whole or not at all."""

    looks_up = True  # an earlier run's entry can be found here (a scratch store: no)
    makes_packs = False  # output shards are made here as packs and linked (a local folder)
    slow_reads = False  # each read is a network request: read ahead in threads

    def __init__(self, where: str, suffix: str) -> None:
        self.where = where  # for messages
        self.suffix = suffix

    @abstractmethod
    def read(self, digest: str) -> Entry | None:
        """The bytes and facts of an intact entry; None: none, or damaged (a miss)."""

    @abstractmethod
    def write(self, digest: str, data: bytes, facts: dict[str, Any]) -> None:
        """Store an entry (`facts` gets its checksum)."""

    def pack(self, members: Sequence[tuple[str, str]], write: PackWriter,
             ) -> tuple[Path, list[dict[str, Any]]]:
        raise NotImplementedError(f"{type(self).__name__} makes no packs")

    def discard(self) -> None:  # noqa: B027 - a hook; default: keep the entries
        """Called once the stage's output holds every entry (a scratch store deletes them)."""


class LocalStore(EntryStore):
    """A local folder: loose entries (what workers write, by temporary name and rename), and
    packs `packs/<pack digest>.tar` with a JSON listing their members, which the stage output
    links as its shards."""

    makes_packs = True

    def __init__(self, folder: Path, suffix: str) -> None:
        super().__init__(str(folder), suffix)
        self.dir = folder
        self._packed: dict[str, tuple[Path, int, int, str, dict[str, Any]]] | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """What a worker process gets: no lock, and the pack listing is read there anew."""
        return {**self.__dict__, "_lock": None, "_packed": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def _path(self, digest: str) -> Path:
        return self.dir / f"{digest}{self.suffix}"

    def _read_loose(self, digest: str, verify: bool) -> Entry | None:
        path = self._path(digest)
        try:
            facts = json.loads(path.with_suffix(".json").read_text())
            data = path.read_bytes()
        except (OSError, ValueError):
            return None
        # Whole entries are written atomically, but a damaged one is a miss, not an error:
        # its bytes must match the checksum recorded when it was stored.
        if isinstance(facts, dict) and (facts.pop(CHECKSUM, None) == checksum_of(data, digest)
                                        or not verify):
            return data, facts
        path.unlink(missing_ok=True)
        return None

    def read(self, digest: str) -> Entry | None:
        """A loose entry, else a packed one. A damaged loose entry is deleted (recomputed and
        rewritten). The facts hold the bytes' sha256 under `SHA256`."""
        return self._read_loose(digest, verify=True) or self._packed_entry(digest)

    def write(self, digest: str, data: bytes, facts: dict[str, Any]) -> None:
        path = self._path(digest)
        write_bytes(path, data, read_only=True)
        # The sha256 is taken here, in the worker threads, rather than by the one thread that
        # later writes the shards.
        write_json(path.with_suffix(".json"), {**facts, CHECKSUM: checksum_of(data, digest),
                                               SHA256: hashlib.sha256(data).hexdigest()})

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

    def _packed_entry(self, digest: str) -> Entry | None:
        found = self._pack_index().get(digest)
        if found is None:
            return None
        pack, offset, size, checksum, facts = found
        try:
            with open(pack, "rb") as f:
                data = os.pread(f.fileno(), size, offset)
        except OSError:
            return None
        return (data, dict(facts)) if checksum_of(data, digest) == checksum else None

    def pack(self, members: Sequence[tuple[str, str]], write: PackWriter,
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
            heal_damaged_links(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Read-only once written, as DVC's cache files are: DVC links the output's shard (this
        # same inode) into its cache.
        with atomic_path(path, suffix=".tar", read_only=True) as tmp:
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


class ScratchStore(LocalStore):
    """The cache is off: the stage's own results wait in a folder inside the output being
    built until they are written into its shards, then the folder is deleted. Nothing from an
    earlier run is ever looked up, and an entry written moments ago is not checked again."""

    looks_up = False
    makes_packs = False

    def read(self, digest: str) -> Entry | None:
        return self._read_loose(digest, verify=False)

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _dvc_cache_dir() -> Path:
    """DVC's local cache of the repo the stage runs for (`dvc exp run --temp` runs in a copy
    under .dvc/tmp/exps; DVC_ROOT names the repo)."""
    return Path(os.environ.get("DVC_ROOT", ".")) / ".dvc" / "cache"


def heal_damaged_links(damaged: Path, dvc_cache: Path | None = None) -> list[Path]:
    """Before a damaged pack is replaced (by a new file: vidmem never rewrites an inode in
    place), deal with the other files that share its inode: DVC links outputs into its cache,
    so its cache object holds the same damaged bytes, and `dvc push` would upload them. A DVC
    object is named by the md5 of its bytes; one whose bytes no longer match its name is
    provably damaged and is deleted, so that DVC stores the repaired output when the stage
    ends (instead of linking the damaged object back into the workspace). Returns the deleted
    objects; a warning names them, and any other link, with what to do."""
    about = damaged.stat()
    if about.st_nlink <= 1:
        return []
    dvc_cache = _dvc_cache_dir() if dvc_cache is None else dvc_cache
    shared = [p for p in dvc_cache.rglob("*") if p.is_file() and p.stat().st_ino == about.st_ino
              and p.stat().st_dev == about.st_dev] if dvc_cache.is_dir() else []
    removed = [p for p in shared if file_digest(p, "md5") != p.parent.name + p.name]
    for path in removed:
        path.unlink()
    others = about.st_nlink - 1 - len(removed)
    message = f"{damaged} is damaged (its checksum does not match)"
    if removed:
        message += (f"; DVC's cache object(s) {', '.join(map(str, removed))} shared its bytes "
                    "and no longer matched their md5: deleted, DVC stores the repaired output "
                    "when this stage ends (run `dvc push` if the remote got the damaged copy)")
    if others > 0:
        message += (f"; {others} other hard link(s) to it hold the same damaged bytes: "
                    "delete them or copy the repaired output over them")
    warnings.warn(message + ". vidmem writes a new pack.", stacklevel=2)
    return removed


class MemoryStore(EntryStore):
    """The cache is off and the results are small (features): they wait in memory until their
    shard is written, each taken out as the shard writer reads it, so memory holds the videos
    of the shards not yet written, not the data set. No files per video: on a GPU box, creating
    and renaming two files per video on one thread capped extract far below the network's
    pace. A digest written twice (two videos with the same frames) is read twice."""

    looks_up = False

    def __init__(self, suffix: str) -> None:
        super().__init__("memory (cache off)", suffix)
        self._entries: dict[str, tuple[bytes, dict[str, Any], int]] = {}
        self._lock = threading.Lock()

    def read(self, digest: str) -> Entry | None:
        with self._lock:
            found = self._entries.get(digest)
            if found is None:
                return None
            data, facts, copies = found
            if copies > 1:
                self._entries[digest] = (data, facts, copies - 1)
            else:
                del self._entries[digest]
        return data, dict(facts)

    def write(self, digest: str, data: bytes, facts: dict[str, Any]) -> None:
        facts = {**facts, SHA256: hashlib.sha256(data).hexdigest()}  # in the writer's thread
        with self._lock:
            copies = self._entries[digest][2] + 1 if digest in self._entries else 1
            self._entries[digest] = (data, facts, copies)

    def discard(self) -> None:
        with self._lock:
            self._entries.clear()


class FsspecStore(EntryStore):
    """An fsspec URL (`s3://bucket/prefix`) that workers on other machines share. The data
    object is uploaded first and the facts JSON last: an object store writes each object
    whole, and an entry without its JSON (a writer killed in between) is a miss, so no reader
    ever sees half an entry. No packs: shards are written in the output."""

    slow_reads = True

    def __init__(self, url: str, suffix: str) -> None:
        self.url = url
        self._fs, path = self._client(url)
        self._pid = os.getpid()
        self.dir = path.rstrip("/")
        super().__init__(url, suffix)

    @staticmethod
    def _client(url: str) -> tuple[Any, str]:
        import fsspec  # only for URL caches (s3fs etc. come with dvc-s3)

        # A fresh client per cache: fsspec's instance cache would keep one bound to the
        # endpoint and credentials of the moment it was first made.
        return fsspec.core.url_to_fs(url, skip_instance_cache=True)

    @property
    def fs(self) -> Any:
        """The client, made again in a process forked from the one that made it (a worker
        process): an async client's event loop belongs to the process that started it."""
        if self._pid != os.getpid():
            self._fs, _ = self._client(self.url)
            self._pid = os.getpid()
        return self._fs

    def read(self, digest: str) -> Entry | None:
        try:
            facts = json.loads(self.fs.cat_file(f"{self.dir}/{digest}.json"))
            data = self.fs.cat_file(f"{self.dir}/{digest}{self.suffix}")
        except (FileNotFoundError, ValueError):
            return None
        if facts.pop(CHECKSUM, None) != checksum_of(data, digest):
            return None  # damaged, half-replaced or another key's: recompute and replace it
        return data, facts

    def write(self, digest: str, data: bytes, facts: dict[str, Any]) -> None:
        self.fs.pipe_file(f"{self.dir}/{digest}{self.suffix}", data)
        self.fs.pipe_file(f"{self.dir}/{digest}.json", json.dumps(
            {**facts, CHECKSUM: checksum_of(data, digest)}).encode())


def open_cache(root: str | os.PathLike | None, namespace: str, config: dict[str, Any],
               fmt: FrameFormat | None = None, scratch: str | os.PathLike | None = None,
               small: bool = False) -> ItemCache:
    """The per-video cache of one stage: entries under `<root>/<namespace>/<config digest>/`
    in `fmt` (`.npy` arrays by default, or frames as image strips: vidmem.store.framestore).
    `root` is a local folder or an fsspec URL; None turns the cache off, and the stage's
    results then wait in `scratch` (a folder inside the output being built), or in memory when
    they are `small` (features: tens of KB per video)."""
    keyed_by_format = fmt is not None  # (entries made before formats existed keep their key)
    fmt = fmt or FrameFormat("npy")
    if root is None:
        if small:
            return ItemCache(MemoryStore(fmt.suffix), fmt)
        if scratch is None:
            raise ValueError("the cache is off (cache.dir null) and the stage gave no scratch "
                             "folder for its results")
        return ItemCache(ScratchStore(Path(scratch).absolute(), fmt.suffix), fmt)
    digest = config_digest({**config, "format": [fmt.kind, fmt.quality]}
                           if keyed_by_format else config)
    if is_url(root):
        return ItemCache(FsspecStore(f"{str(root).rstrip('/')}/{namespace}/{digest}",
                                     fmt.suffix), fmt)
    # Absolute, so workers in other processes find the same folder.
    return ItemCache(LocalStore(Path(root).absolute() / namespace / digest, fmt.suffix), fmt)


class ItemCache:
    """A stage's per-video results, keyed by content: the input's digest (`key`), looked up
    (`fetch`), stored (`store`, by the worker that made it on a miss) in the store
    `open_cache` chose. Which store it is changes nothing here."""

    def __init__(self, store: EntryStore, fmt: FrameFormat) -> None:
        self.entries = store
        self.fmt = fmt
        self.hits = 0

    @property
    def enabled(self) -> bool:
        """Whether entries of earlier runs are looked up (the cache is on)."""
        return self.entries.looks_up

    @property
    def packs(self) -> bool:
        """Whether shards are made here as packs (a local cache that is on)."""
        return self.entries.makes_packs

    @property
    def where(self) -> str:
        return self.entries.where

    def key(self, item: str | os.PathLike) -> str:
        """The content key of an input file: its digest when the cache is on; with the cache
        off nothing is looked up, so the (whole-file) hashing is skipped and the key only tells
        items apart."""
        if self.enabled:
            return file_digest(item)
        return hashlib.sha256(str(Path(item).absolute()).encode()).hexdigest()

    def entry(self, item_digest: str) -> Entry | None:
        """The bytes and facts of an intact entry; None if there is none."""
        return self.entries.read(item_digest)

    def fetch(self, item_digest: str) -> dict[str, Any] | None:
        """The facts of an intact entry (a hit), or None: a miss, or the cache is off."""
        if not self.enabled:
            return None
        found = self.entries.read(item_digest)
        if found is None:
            return None
        self.hits += 1
        found[1].pop(SHA256, None)
        return found[1]

    def store(self, item_digest: str, array: np.ndarray,
              facts: dict[str, Any] | None = None) -> None:
        """Save `array` (encoded in `fmt`) as an entry, with `facts`."""
        self.entries.write(item_digest, encode_frames(array, self.fmt), facts or {})

    def pack(self, members: Sequence[tuple[str, str]], write: PackWriter,
             ) -> tuple[Path, list[dict[str, Any]]]:
        return self.entries.pack(members, write)

    def discard(self) -> None:
        self.entries.discard()

    def missing(self, item: str) -> VidmemError:
        """The error for an entry a worker reported stored that is not there intact."""
        return VidmemError(f"{item}: a worker reported its result stored in the cache "
                           f"({self.where}), but the entry is missing or damaged; check that "
                           "every worker sees the same cache.dir, then re-run")
