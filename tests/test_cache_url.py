"""A per-video cache at an fsspec URL (`cache.dir: s3://bucket/prefix`), so workers on other
machines share entries: tested against a real S3 endpoint on 127.0.0.1 (moto's server)."""

from __future__ import annotations

import numpy as np

from vidmem.store.cache import open_cache
from vidmem.store.framestore import FrameFormat, decode_item
from vidmem.video.frames import decode_videos, list_videos

from conftest import grey_ramp_video


def test_entries_round_trip_through_s3_and_damage_is_a_miss(s3_cache, tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (4, 9, 7, 3), dtype=np.uint8)
    writer = open_cache(s3_cache, "decode", {"v": 1}, FrameFormat("webp"))
    writer.store("abc", frames, {"repeated": False})
    reader = open_cache(s3_cache, "decode", {"v": 1}, FrameFormat("webp"))  # another worker
    assert reader.fetch("abc") == {"repeated": False}
    data, facts = reader.entry("abc")
    np.testing.assert_array_equal(decode_item(data, ".webp", "abc"), frames)
    assert not reader.packs  # packs are local: the output's shards are written from the entries
    assert reader.fetch("other") is None
    assert open_cache(s3_cache, "decode", {"v": 2}).fetch("abc") is None
    reader.entries.fs.pipe_file(f"{reader.entries.dir}/abc.webp", b"damaged")
    assert reader.fetch("abc") is None  # never served
    # An upload that stopped before its facts JSON (a killed writer) is a miss too.
    reader.entries.fs.pipe_file(f"{reader.entries.dir}/half.webp", b"partial")
    assert reader.fetch("half") is None


def test_decode_shares_a_cache_at_an_s3_url(s3_cache, tmp_path, decode_config):
    import dataclasses

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(3):
        grey_ramp_video(videos / f"v{i}.webm", n_frames=10 + i)
    config = dataclasses.replace(decode_config, format="webp")
    first = decode_videos(list_videos(videos), tmp_path / "one", config, cache_root=s3_cache)
    second = decode_videos(list_videos(videos), tmp_path / "two", config, cache_root=s3_cache)
    assert (first.cache_hits, second.cache_hits) == (0, 3)
    local = decode_videos(list_videos(videos), tmp_path / "local", config)  # no cache
    for name in ("index.json", "shard-00000.tar"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes() \
            == (tmp_path / "local" / name).read_bytes()
    assert local.decoded == first.decoded == ["v0.webm", "v1.webm", "v2.webm"]
