import numpy as np
import pytest

from vidmem.backends import create_backend
from vidmem.core.errors import DataError
from vidmem.core.params import Params
from vidmem.store.concatenated import load_concat
from vidmem.store.features import concat_features
from vidmem.store.shards import ShardReader, write_arrays

PARAMS = {"backend": {"mean": {"kind": "helpers:MeanColour",
                               "input": {"size": 4, "value": {"range": [0, 1]}}}}}


@pytest.fixture
def videos() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    # 3 frames per video, each video its own grey level
    return {f"video{i}": rng.integers(0, 50, (3, 4, 4, 3), dtype=np.uint8) + np.uint8(40 * i)
            for i in range(5)}


def decoded(folder, videos: dict[str, np.ndarray]):
    """A decode output (shards) holding `videos`."""
    folder.mkdir(exist_ok=True)
    write_arrays(folder, videos.items())
    return folder


@pytest.fixture
def frames_dir(tmp_path, videos):
    return decoded(tmp_path / "frames_dir", videos)


def features_of(out, stem: str) -> np.ndarray:
    return ShardReader(out).load(stem)


def run(frames_dir, out, cache=None, batch_size=4, params=PARAMS):
    out.mkdir(exist_ok=True)
    backend = create_backend(Params(params), "mean", cache_root=cache)
    return backend.extract_videos(frames_dir, out, batch_size, progress=False)


def test_extract_one_file_per_video_in_order(frames_dir, videos, tmp_path):
    result = run(frames_dir, tmp_path / "out")
    assert result.videos == 5 and result.info["feature_dim"] == 6
    for i in range(5):
        features = features_of(tmp_path / "out", f"video{i}")
        frames = videos[f"video{i}"] / 255.0
        assert features.shape == (3, 6)
        # Each row belongs to its own frame: batching across videos kept them aligned.
        np.testing.assert_allclose(features[:, :3], frames.mean(axis=(1, 2)), rtol=1e-5)
    assert result.info["observed_input_range"][1] <= 1.0


def test_extract_resizes_decoded_frames_by_the_spec_and_stores_only_features(tmp_path):
    """Decoded frames of any size go in; the network sees exactly `resize_frames` of them (the
    normalization contract), and the output holds features, not resized frames."""
    from vidmem.store.framestore import FrameFormat
    from vidmem.video.geometry import InputSpec, resize_frames

    rng = np.random.default_rng(1)
    videos = [rng.integers(0, 256, (3, 9, 16, 3), dtype=np.uint8) for _ in range(2)]
    frames_dir = tmp_path / "decoded"
    frames_dir.mkdir()
    write_arrays(frames_dir, ((f"video{i}", v) for i, v in enumerate(videos)),
                 FrameFormat("webp"))
    crop = {"backend": {"mean": {**PARAMS["backend"]["mean"], "input": {
        "size": 4, "resize": "center_crop", "value": {"range": [0, 1]}}}}}
    run(frames_dir, tmp_path / "out", params=crop)
    spec = InputSpec.from_params(crop["backend"]["mean"]["input"], "t")
    for i, frames in enumerate(videos):
        fed = resize_frames(frames, spec) / 255.0
        assert fed.shape == (3, 4, 4, 3)
        features = features_of(tmp_path / "out", f"video{i}")
        np.testing.assert_allclose(features[:, :3], fed.mean(axis=(1, 2)), rtol=1e-5)
        np.testing.assert_allclose(features[:, 3:], fed.max(axis=(1, 2)), rtol=1e-5)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["index.json",
                                                                     "shard-00000.tar"]


def test_cache_reuses_only_unchanged_videos(frames_dir, videos, tmp_path):
    cache = tmp_path / "cache"
    first = run(frames_dir, tmp_path / "a", cache)
    assert first.cache_hits == 0
    videos["video2"] = np.zeros((3, 4, 4, 3), np.uint8)  # content changed
    videos["video9"] = np.ones((3, 4, 4, 3), np.uint8)   # a new video
    grown = decoded(tmp_path / "grown", videos)
    second = run(grown, tmp_path / "b", cache)
    assert second.cache_hits == 4  # video2 and video9 recomputed
    assert features_of(tmp_path / "b", "video2")[:, :3].max() == 0
    run(grown, tmp_path / "c")  # no cache: the from-scratch reference
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert names == ["index.json", "shard-00000.tar"]
    for name in names:  # the same shards, byte for byte
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "c" / name).read_bytes()


def test_cache_is_keyed_by_backend_config(frames_dir, tmp_path):
    cache = tmp_path / "cache"
    run(frames_dir, tmp_path / "a", cache)
    changed = {"backend": {"mean": {**PARAMS["backend"]["mean"],
                                    "input": {"size": 4, "value": {"range": [-1, 1]}}}}}
    assert run(frames_dir, tmp_path / "b", cache, params=changed).cache_hits == 0


def test_corrupt_cache_entry_is_recomputed(frames_dir, tmp_path):
    cache = tmp_path / "cache"
    run(frames_dir, tmp_path / "a", cache)
    assert not list(cache.rglob("*.npy"))  # every entry went into the pack
    pack = next(cache.rglob("packs/*.tar"))
    data = bytearray(pack.read_bytes())
    data[600] ^= 0xFF  # a byte of the first member (video0), past its 512-byte header
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    assert run(frames_dir, tmp_path / "b", cache).cache_hits == 4  # the damaged one is redone
    assert run(frames_dir, tmp_path / "c", cache).cache_hits == 5
    run(frames_dir, tmp_path / "d")  # no cache: the reference
    assert (tmp_path / "c" / "shard-00000.tar").read_bytes() == \
        (tmp_path / "d" / "shard-00000.tar").read_bytes()


def test_concat_keeps_ids_and_rows_together(frames_dir, tmp_path):
    run(frames_dir, tmp_path / "out")
    order = ["video3.webm", "video0.webm", "video4.webm"]
    shape = concat_features(tmp_path / "out", order, tmp_path / "all")
    assert shape == {"videos": 3, "frames": 3, "dim": 6}
    features, videos = load_concat(tmp_path / "all")
    assert videos == order and features.shape == (3, 3, 6)
    for row, video in enumerate(order):
        expected = features_of(tmp_path / "out", video.replace(".webm", ""))
        np.testing.assert_array_equal(features[row], expected)
        np.testing.assert_array_equal(features[[row]][0], expected)
    np.testing.assert_array_equal(features[np.array([2, 0])], np.asarray(features)[[2, 0]])


def test_concat_refuses_missing_or_mismatched_features(frames_dir, tmp_path):
    run(frames_dir, tmp_path / "out")
    with pytest.raises(DataError, match="video7.webm"):
        concat_features(tmp_path / "out", ["video0.webm", "video7.webm"], tmp_path / "x")
    uneven = tmp_path / "uneven"
    uneven.mkdir()
    write_arrays(uneven, [("video0", np.zeros((3, 6), np.float32)),
                          ("video1", np.zeros((2, 6), np.float32))])
    with pytest.raises(DataError, match=r"video1 has features of shape \[2, 6\], video0 \[3, 6\]"):
        concat_features(uneven, ["video0.webm", "video1.webm"], tmp_path / "x")
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.*"))


def test_misalign_control_permutes_rows_but_not_ids(frames_dir, tmp_path):
    run(frames_dir, tmp_path / "out")
    order = [f"video{i}.webm" for i in range(5)]
    concat_features(tmp_path / "out", order, tmp_path / "ok")
    concat_features(tmp_path / "out", order, tmp_path / "bad", misalign_seed=0)
    good, ids = load_concat(tmp_path / "ok")
    bad, bad_ids = load_concat(tmp_path / "bad")
    good, bad = np.asarray(good), np.asarray(bad)
    assert ids == bad_ids
    assert not np.array_equal(good, bad)
    assert sorted(map(bytes, bad)) == sorted(map(bytes, good))  # same rows, other owners


def test_cached_run_records_the_same_info_as_a_fresh_one(frames_dir, tmp_path):
    cache = tmp_path / "cache"
    fresh = run(frames_dir, tmp_path / "a", cache)
    cached = run(frames_dir, tmp_path / "b", cache)
    assert cached.cache_hits == 5
    assert cached.info == fresh.info
    # Real frames only (padding excluded): video0 holds 0, video4 holds 49 + 160.
    assert fresh.info["observed_input_range"] == [0.0, round(209 / 255, 4)]
