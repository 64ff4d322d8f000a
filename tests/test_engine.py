"""The one per-video engine (vidmem.store.engine) and the stores behind the per-video cache
(vidmem.store.cache): what decode and extract both rely on, tested on a worker made here."""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import threading

import numpy as np
import pytest

from vidmem.core.errors import VidmemError
from vidmem.store.cache import FsspecStore, LocalStore, ScratchStore, open_cache
from vidmem.store.engine import Skipped, VideoResult, run_per_video
from vidmem.store.shards import ShardReader


def store_of(kind: str, tmp_path, s3_url: str | None):
    if kind == "local":
        return open_cache(tmp_path / "cache", "t", {"v": 1}).entries
    if kind == "scratch":
        return open_cache(None, "t", {"v": 1}, scratch=tmp_path / "scratch").entries
    return open_cache(s3_url, "t", {"v": 1}).entries


@pytest.fixture(params=["local", "scratch", "s3"])
def store(request, tmp_path):
    s3_url = request.getfixturevalue("s3_cache") if request.param == "s3" else None
    return store_of(request.param, tmp_path, s3_url)


def test_every_store_keeps_entries_whole_behind_one_interface(store):
    """The contract every store keeps: an entry written is read back with its facts; a missing
    one is None; and a store that looks entries up never serves damaged bytes."""
    expected_type = {LocalStore: "local", ScratchStore: "scratch", FsspecStore: "s3"}
    assert type(store) in expected_type
    store.write("abc", b"entry bytes", {"made": 1})
    data, facts = store.read("abc")
    assert data == b"entry bytes" and facts["made"] == 1
    assert store.read("missing") is None
    if not store.looks_up:
        return  # scratch: its entries were written moments ago by this very stage
    damaged = b"entry bytez"
    if isinstance(store, FsspecStore):
        store.fs.pipe_file(f"{store.dir}/abc{store.suffix}", damaged)
    else:
        (store.dir / f"abc{store.suffix}").write_bytes(damaged)
    assert store.read("abc") is None


def test_open_cache_picks_the_store_and_the_cache_does_not_know_which():
    with pytest.raises(ValueError, match="no scratch folder"):
        open_cache(None, "t", {})


class CountingWorker:
    """Stores `len(stem)` copies of the stem's first byte: a result anyone can check."""

    calls: list[list[str]] = []
    lock = threading.Lock()

    def __init__(self, cache) -> None:
        self.cache = cache

    def __call__(self, chunk):
        with self.lock:
            CountingWorker.calls.append([stem for stem, _, _ in chunk])
        results = []
        for stem, source, digest in chunk:
            if source == "bad":
                results.append(VideoResult(stem, digest, error="unreadable"))
                continue
            array = np.full((2, len(stem)), ord(stem[0]), np.uint8)
            self.cache.store(digest, array, {"length": len(stem)})
            results.append(VideoResult(stem, digest, {"length": len(stem)}))
        return results


def run(items, cache, out, chunk_size=2):
    def key(stem, source):
        if source == "unkeyable":
            raise Skipped("cannot read it")
        return hashlib.sha256(f"{stem}:{source}".encode()).hexdigest()

    return run_per_video(items, cache, out, key=key,
                         make_worker=lambda: CountingWorker(cache), chunk_size=chunk_size,
                         threads=2, progress=False)


def test_the_engine_works_only_on_misses_and_writes_shards_in_stem_order(tmp_path):
    items = [(f"v{k:02d}", "ok") for k in (5, 1, 9, 3, 7)] + [("v04", "bad"), ("v02", "unkeyable")]
    CountingWorker.calls = []
    first = run(items, open_cache(tmp_path / "cache", "t", {}), tmp_path / "a")
    assert [r.stem for r in first] == sorted(stem for stem, _ in items)
    skipped = {r.stem: r.error for r in first if r.facts is None}
    assert skipped == {"v02": "cannot read it", "v04": "unreadable"}
    # The misses went to workers in chunks of 2, in stem order (unkeyable v02 never did).
    assert sorted(CountingWorker.calls) == [["v01", "v03"], ["v04", "v05"], ["v07", "v09"]]
    reader = ShardReader(tmp_path / "a")
    assert reader.stems() == ["v01", "v03", "v05", "v07", "v09"]
    np.testing.assert_array_equal(reader.load("v07"), np.full((2, 3), ord("v"), np.uint8))

    # Again with the same cache: every good video is a hit, no worker is built or called, and
    # the output is the same bytes.
    CountingWorker.calls = []
    again = run(items, open_cache(tmp_path / "cache", "t", {}), tmp_path / "b", chunk_size=3)
    assert CountingWorker.calls == [[ "v04"]]  # only the bad one is tried again
    assert sum(r.from_cache for r in again) == 5
    for path in (tmp_path / "a").iterdir():
        assert (tmp_path / "b" / path.name).read_bytes() == path.read_bytes()


def test_without_a_cache_the_output_is_the_same_and_no_scratch_is_left(tmp_path):
    items = [(f"v{k}", "ok") for k in range(6)]
    run(items, open_cache(tmp_path / "cache", "t", {}), tmp_path / "cached")
    run(items, open_cache(None, "t", {}, scratch=tmp_path / "plain" / ".entries"),
        tmp_path / "plain")
    names = sorted(p.name for p in (tmp_path / "plain").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "cached").iterdir())
    assert ".entries" not in names
    for name in names:
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "cached" / name).read_bytes()


def test_a_worker_that_answers_for_the_wrong_video_stops_the_stage(tmp_path):
    cache = open_cache(tmp_path / "cache", "t", {})

    def swapped(chunk):
        return [VideoResult(stem + "x", digest, {}) for stem, _, digest in chunk]

    with pytest.raises(RuntimeError, match="'v0x' where 'v0' was due"):
        run_per_video([("v0", "ok")], cache, tmp_path / "out", key=lambda s, _: s,
                      make_worker=lambda: swapped, progress=False)
    assert not (tmp_path / "out" / "index.json").exists()


class PidWorker:
    """Stores each stem's bytes and returns, beside the results, the process it ran in."""

    def __init__(self, cache, die_on: str = "") -> None:
        self.cache, self.die_on = cache, die_on

    def __call__(self, chunk):
        results = []
        for stem, _, digest in chunk:
            if stem == self.die_on:
                os._exit(3)  # a worker killed mid-chunk (out of memory, a crash in a library)
            if stem == "fails":
                raise VidmemError(f"{stem}: the worker's own error")
            self.cache.store(digest, np.frombuffer(stem.encode(), np.uint8)[None], {})
            results.append(VideoResult(stem, digest, {"pid": os.getpid()}))
        return results


def run_pids(items, cache, out, processes: bool, die_on: str = ""):
    return run_per_video(items, cache, out, key=lambda stem, _: hashlib.sha256(
        stem.encode()).hexdigest(), make_worker=functools.partial(PidWorker, cache, die_on),
        chunk_size=2, threads=2, processes=processes, write_output=True, progress=False)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes: Linux")
def test_worker_processes_write_what_threads_write_from_other_processes(tmp_path):
    """Decode and normalize run their workers as processes (their per-video work holds the
    GIL): the output is byte for byte the threads', the work ran outside this process on as
    many processes as asked, a worker's own error reaches the stage as itself, and a worker
    that dies stops the stage with a message that says so, leaving no output."""
    items = [(f"v{k:02d}", "ok") for k in range(12)]
    threads = run_pids(items, open_cache(None, "t", {}, scratch=tmp_path / "a" / ".e"),
                       tmp_path / "a", processes=False)
    processes = run_pids(items, open_cache(None, "t", {}, scratch=tmp_path / "b" / ".e"),
                         tmp_path / "b", processes=True)
    assert {r.facts["pid"] for r in threads} == {os.getpid()}
    worked_in = {r.facts["pid"] for r in processes}
    assert os.getpid() not in worked_in and 1 <= len(worked_in) <= 2
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        if name != "index.json":  # the index holds the facts, and with them the pids
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()

    with pytest.raises(VidmemError, match="fails: the worker's own error"):
        run_pids([*items, ("fails", "ok")], open_cache(tmp_path / "c", "t", {}),
                 tmp_path / "c_out", processes=True)
    with pytest.raises(RuntimeError, match="a worker process of this stage died"):
        run_pids(items, open_cache(tmp_path / "d", "t", {}), tmp_path / "d_out",
                 processes=True, die_on="v07")
    assert not (tmp_path / "d_out" / "index.json").exists()
