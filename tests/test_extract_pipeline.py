"""The extract loop as a GPU would drive it, tested on the CPU: loading on several threads,
one batch in flight while the next is assembled, `frames_per_batch: auto`, and the page-locked
buffers' plain-memory fallback."""

from __future__ import annotations

import numpy as np
import pytest

from vidmem.backends import base, create_backend
from vidmem.core.params import Params
from vidmem.store.features import open_features
from vidmem.store.shards import write_arrays

from helpers import MeanColour

SPEC = {"size": [8, 8], "resize": "squash", "value": {"range": [0, 1]}}


def _videos(tmp_path, count=7, frames=3):
    rng = np.random.default_rng(0)
    folder = tmp_path / "frames"
    write_arrays(folder, ((f"video{i}", rng.integers(0, 256, (frames, 8, 8, 3), dtype=np.uint8))
                          for i in range(count)))
    return folder


def _backend(**config):
    return create_backend(Params({"backend": {"m": {"kind": "helpers:MeanColour", "input": SPEC,
                                                    **config}}}), "m")


def _features(backend, frames, out):
    backend.extract_videos(frames, out, progress=False)
    reader = open_features(out)
    return {stem: reader.load(stem) for stem in reader.stems()}


class Deferred(MeanColour):
    """Records when each batch is started and collected, as a device that works asynchronously
    would be driven."""

    events: list[tuple[str, int]]

    def submit(self, frames):
        self.events.append(("submit", len(self.events)))
        number = sum(kind == "submit" for kind, _ in self.events)
        features = np.asarray(self._extract(frames), np.float32)

        def wait():
            self.events.append(("collect", number))
            return features, True

        return wait


def test_the_next_batch_starts_before_the_previous_one_is_collected(tmp_path):
    frames = _videos(tmp_path)
    backend = _backend(frames_per_batch=6)
    reference = _features(backend, frames, tmp_path / "reference")
    deferred = Deferred(backend.name, backend.spec, backend.config)
    deferred.events = []
    assert _features(deferred, frames, tmp_path / "deferred").keys() == reference.keys()
    for stem, features in _features(deferred, frames, tmp_path / "again").items():
        np.testing.assert_array_equal(features, reference[stem])
    kinds = [kind for kind, _ in deferred.events]
    # 7 videos × 3 frames in batches of 6: 4 batches per run; each collect comes after the
    # next submit, but for the last batch.
    run = kinds[:8]
    assert run == ["submit", "submit", "collect", "submit", "collect", "submit", "collect",
                   "collect"], kinds


@pytest.mark.parametrize("threads", [1, 4])
def test_loader_threads_change_nothing_in_the_output(tmp_path, monkeypatch, threads):
    frames = _videos(tmp_path, count=9)
    monkeypatch.setattr(base, "loader_threads", lambda: 1)
    one = _features(_backend(frames_per_batch=4), frames, tmp_path / "one")
    monkeypatch.setattr(base, "loader_threads", lambda: threads)
    many = _features(_backend(frames_per_batch=4), frames, tmp_path / "many")
    assert list(many) == list(one)
    for stem in one:
        assert many[stem].tobytes() == one[stem].tobytes()
    assert base.loader_threads() == threads


def test_auto_batch_size_resolves_per_device_and_keys_the_cache_as_the_number(tmp_path):
    auto = _backend(frames_per_batch="auto")
    assert auto.frames_per_batch == base.DEFAULT_BATCH_SIZE
    explicit = _backend(frames_per_batch=base.DEFAULT_BATCH_SIZE)
    # The same per-video cache folder: keyed by the size auto resolved to, not the word.
    auto.cache_root = explicit.cache_root = tmp_path / "cache"
    assert auto.video_cache().entries.dir == explicit.video_cache().entries.dir
    frames = _videos(tmp_path)
    a = _features(auto, frames, tmp_path / "auto")
    b = _features(explicit, frames, tmp_path / "explicit")
    assert all(a[stem].tobytes() == b[stem].tobytes() for stem in a)


def test_torch_auto_batch_is_the_cpus_and_buffers_fall_back_to_plain_memory():
    from vidmem.backends.torch_backbones import AUTO_BATCH_CPU

    backend = create_backend(Params({"backend": {"e": {
        "kind": "torch", "model": "efficientnet_lite0", "weights": "random", "device": "cpu",
        "frames_per_batch": "auto",
        "input": {"size": 224, "resize": "squash", "value": {"range": [-1, 1]}}}}}), "e")
    assert backend.frames_per_batch == AUTO_BATCH_CPU == 16
    buffer = backend.batch_buffer(2)
    assert isinstance(buffer, np.ndarray) and buffer.shape == (2, 224, 224, 3)
    buffer[:] = np.random.default_rng(0).integers(0, 256, buffer.shape, dtype=np.uint8)
    np.testing.assert_array_equal(backend.collect(backend.submit(buffer), 2),
                                  backend.extract(buffer))
