"""Stage outputs as shards (vidmem.store.shards): few files per output, stable boundaries, one copy
linked with the per-video cache, damage detected."""

from __future__ import annotations

import tarfile
import threading
import time

import numpy as np
import pytest

from vidmem.core.errors import DataError, VidmemError
from vidmem.store.cache import ItemCache, open_cache
from vidmem.store.shards import MAX_SHARD_VIDEOS, ShardReader, plan_shards, write_arrays, write_shards


def stems(n: int, start: int = 0) -> list[str]:
    return [f"video{i}" for i in range(start, start + n)]


@pytest.mark.parametrize("n", [1_000, 10_000, 50_000])
def test_an_output_holds_about_n_over_100_files(n):
    shards = plan_shards(stems(n))
    assert sum(len(s) for s in shards) == n and [v for s in shards for v in s] == sorted(stems(n))
    assert len(shards) + 2 <= n / 100 + 10  # + index.json and info.json
    assert max(len(s) for s in shards) <= MAX_SHARD_VIDEOS


def test_new_videos_change_only_the_shards_they_land_in():
    before = plan_shards(stems(5_000))
    added = ["video2500x", "video77x", "video4100x"]  # sort between existing names
    after = plan_shards(stems(5_000) + added)
    changed = [s for s in after if s not in before]
    assert all(any(v in s for v in added) for s in changed)
    assert len(changed) <= 2 * len(added)  # a new video may also end a shard, splitting it
    assert len([s for s in before if s not in after]) <= len(added)
    # Names that sort in order of arrival: only the last shard changes.
    padded = [f"video{i:06d}" for i in range(5_050)]
    first, grown = plan_shards(padded[:5_000]), plan_shards(padded)
    assert grown[:len(first) - 1] == first[:-1]


def entries(cache: ItemCache, arrays: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    for stem, array in arrays.items():
        cache.store(f"digest-{stem}", array, {"made": stem})
    return [(stem, f"digest-{stem}") for stem in arrays]


def test_shards_are_cache_packs_linked_into_the_output_and_reused(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {stem: rng.normal(size=(8, 5)).astype(np.float32) for stem in stems(300)}
    cache = open_cache(tmp_path / "cache", "extract", {"v": 1})
    write_shards(tmp_path / "a", entries(cache, arrays), cache)
    reader = ShardReader(tmp_path / "a")
    assert reader.stems() == sorted(arrays)
    for stem in ("video0", "video299"):
        np.testing.assert_array_equal(reader.load(stem), arrays[stem])
    shards = sorted(tmp_path.glob("a/shard-*.tar"))
    assert len(shards) == len(plan_shards(list(arrays)))
    # Each shard is the cache's pack (one inode), and no loose entry is left in the cache.
    assert all(s.stat().st_nlink == 2 for s in shards)
    assert not list((tmp_path / "cache").rglob("*.npy"))
    # A plain tar, readable by tools that know nothing of vidmem (webdataset, `tar`).
    with tarfile.open(shards[0]) as tar:
        first = tar.getnames()[0]
        assert first.endswith(".npy") and tar.extractfile(first).read() == reader.read(first[:-4])
    # Later hits come out of the packs, facts and all; the same shards are linked again.
    again = open_cache(tmp_path / "cache", "extract", {"v": 1})
    assert again.fetch("digest-video7") == {"made": "video7"}
    write_shards(tmp_path / "b", [(stem, f"digest-{stem}") for stem in arrays], again)
    for shard in shards:
        assert (tmp_path / "b" / shard.name).samefile(shard)
    assert (tmp_path / "b" / "index.json").read_bytes() == (tmp_path / "a" / "index.json").read_bytes()


def test_without_a_cache_the_same_shards_are_written_directly(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {stem: rng.normal(size=(2, 3)).astype(np.float32) for stem in stems(150)}
    cache = open_cache(tmp_path / "cache", "x", {})
    write_shards(tmp_path / "cached", entries(cache, arrays), cache)
    write_arrays(tmp_path / "direct", arrays.items())
    names = sorted(p.name for p in (tmp_path / "direct").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "cached").iterdir())
    for name in names:
        assert (tmp_path / "direct" / name).read_bytes() == (tmp_path / "cached" / name).read_bytes()


def test_damaged_shard_bytes_are_an_error_naming_the_shard(tmp_path):
    write_arrays(tmp_path / "out", [("video1", np.ones((2, 3), np.float32))])
    shard = tmp_path / "out" / "shard-00000.tar"
    data = bytearray(shard.read_bytes())
    data[600] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match="shard-00000.tar: the bytes of video1 do not match"):
        ShardReader(tmp_path / "out").load("video1")
    with pytest.raises(DataError, match="index.json not found: run the stage"):
        ShardReader(tmp_path / "missing")


def test_a_worker_entry_missing_from_the_cache_is_named(tmp_path):
    cache = open_cache(tmp_path / "cache", "decode", {})
    with pytest.raises(VidmemError, match="clip.webm: a worker reported its result stored"):
        write_shards(tmp_path / "out", [("clip", "nothing-here")], cache,
                     names={"nothing-here": "clip.webm"})


@pytest.mark.parametrize("packs", [True, False])
def test_shards_written_at_once_are_the_bytes_one_writer_writes(tmp_path, monkeypatch, packs):
    """Several shards are written at the same time (one writer thread capped stages whose
    per-video work runs on processes): each shard, its pack and the index are the bytes a
    single writer makes, with and without a cache."""
    from vidmem.store import shards as module

    rng = np.random.default_rng(2)
    arrays = {stem: rng.normal(size=(4, 6)).astype(np.float32) for stem in stems(900)}
    assert len(plan_shards(list(arrays))) >= 5
    # How many shards are being written at the same moment (each write held a little, so
    # writers that can overlap do).
    lock, writing, most = threading.Lock(), [0], [0]
    write_tar = module._write_tar

    def counted_write_tar(*args):
        with lock:
            writing[0] += 1
            most[0] = max(most[0], writing[0])
        time.sleep(0.02)
        try:
            return write_tar(*args)
        finally:
            with lock:
                writing[0] -= 1

    monkeypatch.setattr(module, "_write_tar", counted_write_tar)

    def write(writers, name):
        monkeypatch.setattr(module, "shard_writers", lambda: writers)
        most[0] = 0
        if not packs:
            write_arrays(tmp_path / name, arrays.items())
            return
        cache = open_cache(tmp_path / f"cache-{name}", "x", {})
        write_shards(tmp_path / name, entries(cache, arrays), cache)

    write(1, "one")
    assert most[0] == 1
    write(4, "four")
    assert most[0] > 1
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "four").iterdir())
    for name in names:
        assert (tmp_path / "four" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
    if packs:
        one = sorted(p.read_bytes() for p in (tmp_path / "cache-one").rglob("packs/*"))
        assert one == sorted(p.read_bytes() for p in (tmp_path / "cache-four").rglob("packs/*"))
