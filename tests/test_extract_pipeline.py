"""The extract loop as a GPU would drive it, tested on the CPU: loading on several processes,
one batch in flight while the next is assembled, `frames_per_batch: auto`, and batches
assembled on the network's device."""

from __future__ import annotations

import os
import resource
import signal
import sys
import threading

import numpy as np
import pytest

from vidmem.backends import base, create_backend
from vidmem.core.errors import DataError, VidmemError
from vidmem.core.params import Params
from vidmem.store.executor import forked_process
from vidmem.store.features import open_features
from vidmem.store.shards import ShardReader, write_arrays

from helpers import CudaRuntime, MeanColour

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


@pytest.mark.parametrize("threads, processes", [(1, False), (4, False), (2, True)])
def test_loaders_change_nothing_in_the_output(tmp_path, monkeypatch, threads, processes):
    """One loader thread, several, or loader processes (as on a GPU; forced here): the same
    features, byte for byte."""
    frames = _videos(tmp_path, count=9)
    monkeypatch.setattr(base, "loader_threads", lambda: 1)
    one = _features(_backend(frames_per_batch=4), frames, tmp_path / "one")
    monkeypatch.setattr(base, "loader_threads", lambda: threads)
    monkeypatch.setattr(MeanColour, "loads_on_processes", lambda self: processes)
    started = []
    monkeypatch.setattr(base, "forked_process",
                        lambda *a, **k: started.append(a) or forked_process(*a, **k))
    many = _features(_backend(frames_per_batch=4), frames, tmp_path / "many")
    # One loader process per loader, started once for the whole stage.
    assert len(started) == (threads if processes and sys.platform.startswith("linux") else 0)
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


def test_torch_auto_batch_is_the_cpus_and_batches_assemble_on_the_device():
    """On the CPU, `auto` is the CPU's batch, and a batch assembled video by video on the
    network's device (as a GPU assembles it, without streams), padded with zero frames, gives
    the features `extract` gives for the same frames."""
    from vidmem.backends.torch_backbones import AUTO_BATCH_CPU, DeviceFrameBatch

    backend = create_backend(Params({"backend": {"e": {
        "kind": "torch", "model": "efficientnet_lite0", "weights": "random", "device": "cpu",
        "frames_per_batch": "auto",
        "input": {"size": 224, "resize": "squash", "value": {"range": [-1, 1]}}}}}), "e")
    assert backend.frames_per_batch == AUTO_BATCH_CPU == 16
    frames = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    batch = backend.new_batch(4)
    assert isinstance(batch, DeviceFrameBatch) and batch.tensor.device.type == "cpu"
    assert len(batch) == 4
    batch.tensor.fill_(255)  # what a reused buffer could hold: padding must overwrite it
    source = frames.copy()
    batch.put(0, source[:2])
    batch.put(2, source[2:])
    source[:] = 0  # a loader's slot refilled once put returned: the batch holds its own copy
    batch.pad(3)
    features = backend.collect(backend.submit_batch(batch), 4)
    padded = np.concatenate([frames, np.zeros((1, 224, 224, 3), np.uint8)])
    assert features.tobytes() == backend.extract(padded).tobytes()
    # Nothing to page-lock on the CPU, and nothing to undo.
    assert backend.pin_host_memory(source)() is None


def test_a_page_lock_cuda_refuses_leaves_the_network_thread_able_to_launch(monkeypatch, capsys):
    """A GPU backend page-locks the loaders' slots; where CUDA refuses (here: memory already
    locked), copies are staged by the driver instead and the stage goes on. The refusal must
    not stay behind as the last error of the thread that drives the network, where PyTorch's
    next kernel launch would fail with it: the runtime's calls run on a thread of their own, on
    the backend's device. (Seen failing with the calls made on the caller's thread: the launch
    raised "CUDA error 712".)"""
    import torch

    backend = create_backend(Params({"backend": {"e": {
        "kind": "torch", "model": "efficientnet_lite0", "weights": "random", "device": "cpu",
        "input": {"size": 32, "resize": "squash", "value": {"range": [-1, 1]}}}}}), "e")
    runtime = CudaRuntime()
    monkeypatch.setattr(torch.cuda, "cudart", lambda: runtime)
    monkeypatch.setattr(torch.cuda, "set_device", runtime.set_device)
    monkeypatch.setattr(backend, "device", torch.device("cuda", 1))
    slots = np.zeros((4, 3, 8, 8, 3), np.uint8)

    unpin = backend.pin_host_memory(slots)
    assert runtime.locked == {slots.ctypes.data: slots.nbytes}
    assert backend.pin_host_memory(slots)() is None  # refused: nothing to undo
    assert "could not page-lock the loaders' shared memory (cudaError 712: part or all" \
        in capsys.readouterr().err
    runtime.launch_kernel()  # the network's next kernel, on this thread: no stale error
    unpin()
    assert runtime.locked == {}
    runtime.launch_kernel()
    assert [name for name, _, _ in runtime.calls] == ["register", "register", "unregister"]
    assert all(thread != threading.get_ident() and device == 1
               for _, thread, device in runtime.calls)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="loader processes: Linux")
def test_torch_backbone_batches_from_loader_slots_match_loader_threads(tmp_path, monkeypatch):
    """The GPU's combination, on the CPU: loader processes fill shared slots and each video is
    copied from its slot into the batch on the network's device; the features are those of
    loader threads, byte for byte (a slot refilled before its copy was done would change
    them)."""
    from vidmem.backends.torch_backbones import TorchBackbone

    frames = _videos(tmp_path, count=9)

    def features(processes, out):
        monkeypatch.setattr(TorchBackbone, "loads_on_processes", lambda self: processes)
        backend = create_backend(Params({"backend": {"e": {
            "kind": "torch", "model": "efficientnet_lite0", "weights": "random",
            "device": "cpu", "frames_per_batch": 4,
            "input": {"size": 32, "resize": "squash", "value": {"range": [-1, 1]}}}}}), "e")
        loaders = backend.video_loaders(ShardReader(frames))
        assert loaders.processes == processes
        loaders.close()
        return _features(backend, frames, tmp_path / out)

    monkeypatch.setattr(base, "loader_threads", lambda: 2)
    on_threads, on_processes = features(False, "threads"), features(True, "processes")
    assert list(on_processes) == list(on_threads) and len(on_threads) == 9
    for stem, value in on_threads.items():
        assert on_processes[stem].tobytes() == value.tobytes()


class PidLoader(base.VideoLoader):
    """Frames whose first value is the loading process's pid modulo 251 (so a test sees where
    each video was loaded)."""

    def __getitem__(self, stem):
        frames, fed = super().__getitem__(stem)
        frames = frames.copy()
        frames.flat[0] = os.getpid() % 251
        return frames, fed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="loader processes: Linux")
def test_loader_processes_yield_every_chunk_in_order_and_outlive_chunks(tmp_path, capsys):
    """More than one loader: videos load in worker processes (not under the GIL of the
    process that drives the network) into shared slots, come back in order with their fed
    range (a video of another length whole), and the same processes serve every chunk of the
    stage; the slots are page-locked once the loaders run (as a GPU backend does) and let go
    at the end; where the slots' memory cannot be reserved, threads load instead and a line
    says why."""
    folder = _videos(tmp_path, count=9)
    longer = np.random.default_rng(1).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    write_arrays(tmp_path / "mixed", [*((stem, ShardReader(folder).load(stem))
                                        for stem in ShardReader(folder).stems()),
                                      ("video4b", longer)])
    spec = _backend().spec
    reference = base.VideoLoader(ShardReader(tmp_path / "mixed"), spec)
    stems = reference.frames.stems()
    pinned, unpinned = [], []

    def pin(slots):  # what a GPU backend does to the slots: once, with the loaders running
        pinned.append((slots, len(loaders.processes_started)))
        return lambda: unpinned.append(True)

    loaders = base.VideoLoaders(PidLoader(ShardReader(tmp_path / "mixed"), spec), 2, (3, 8, 8, 3),
                                pin_slots=pin)
    assert loaders.processes
    try:
        # Each video copied out as it comes (the slot is refilled once the next is asked for).
        first = [(stem, (frames.copy(), fed)) for stem, (frames, fed)
                 in loaders.in_order(stems[:6])]
        started = list(loaders.processes_started)
        second = [(stem, (frames.copy(), fed)) for stem, (frames, fed)
                  in loaders.in_order(stems[6:])]
        # The same processes for the second chunk as for the first (started once per stage).
        assert loaders.processes_started == started and len(started) == 2
        assert len(pinned) == 1 and pinned[0][1] == 2  # page-locked once both were forked
        assert pinned[0][0].shape == (4, 3, 8, 8, 3)
        assert np.shares_memory(pinned[0][0], loaders.slots)
        assert not unpinned
    finally:
        loaders.close()
    assert unpinned == [True]
    assert [stem for stem, _ in first + second] == stems
    pids = {int(frames.flat[0]) for _, (frames, _) in first + second}
    assert os.getpid() % 251 not in pids and 1 <= len(pids) <= 2
    for stem, (frames, fed) in first + second:
        expected, expected_fed = reference[stem]
        assert frames.shape == expected.shape
        assert frames.reshape(-1)[1:].tobytes() == expected.reshape(-1)[1:].tobytes()
        assert fed == expected_fed

    # Memory that cannot hold the slots (here a file-size limit below their size, which the
    # kernel applies to the shared memory too): threads load, and a line says why.
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    signal_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, limits[1]))
    try:
        on_threads = base.VideoLoaders(PidLoader(ShardReader(tmp_path / "mixed"), spec), 2,
                                       (3, 8, 8, 3))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, signal_handler)
    assert not on_threads.processes
    assert "could not be reserved" in capsys.readouterr().err
    assert {int(f.flat[0]) for _, (f, _) in on_threads.in_order(stems[:9])} == \
        {os.getpid() % 251}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="loader processes: Linux")
def test_loader_processes_outlive_the_thread_that_asked_and_stop_when_closed(tmp_path):
    """The engine asks for videos from a thread of its own, which ends before the stage closes
    the loaders: they stay up for whoever asks next, and stop when closed (exit status 0),
    not killed when that thread ends (Linux's parent-death signal follows the thread that
    forked a process)."""
    folder = _videos(tmp_path, count=6)
    loaders = base.VideoLoaders(base.VideoLoader(ShardReader(folder), _backend().spec), 2,
                                (3, 8, 8, 3))
    stems = ShardReader(folder).stems()
    asked: list[str] = []
    engine = threading.Thread(target=lambda: asked.extend(
        stem for stem, _ in loaders.in_order(stems[:3])))
    engine.start()
    engine.join()
    processes = list(loaders.processes_started)
    try:
        for process in processes:
            process.join(timeout=0.5)  # time for a death signal to arrive
        assert [process.exitcode for process in processes] == [None, None]
        asked.extend(stem for stem, _ in loaders.in_order(stems[3:]))
    finally:
        loaders.close()
    assert asked == stems
    assert [process.exitcode for process in processes] == [0, 0]
    assert not any(thread.name == "vidmem-loaders" for thread in threading.enumerate())


class FailingLoader(base.VideoLoader):
    """video3 cannot be read (an error of its own); loading video5 kills its loader."""

    def __getitem__(self, stem):
        if stem == "video3":
            raise DataError(f"{stem} is unreadable")
        if stem == "video5":
            os._exit(3)
        return super().__getitem__(stem)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="loader processes: Linux")
def test_a_loaders_error_is_the_stages_and_a_dead_loader_stops_it(tmp_path):
    """A loader's own error reaches the stage as itself, and the next chunk still gets its own
    videos (no answer meant for the failed chunk is left in a pipe); a loader that dies stops
    the stage with a message that says so; close() leaves no loader process behind."""
    folder = _videos(tmp_path, count=7)
    spec = _backend().spec
    reference = base.VideoLoader(ShardReader(folder), spec)
    loaders = base.VideoLoaders(FailingLoader(ShardReader(folder), spec), 2, (3, 8, 8, 3))
    try:
        with pytest.raises(DataError, match="video3 is unreadable"):
            for _ in loaders.in_order([f"video{i}" for i in (0, 1, 2, 3, 4, 6)]):
                pass
        again = [(stem, frames.copy()) for stem, (frames, _) in
                 loaders.in_order(["video6", "video0", "video1", "video2"])]
        assert [stem for stem, _ in again] == ["video6", "video0", "video1", "video2"]
        for stem, frames in again:
            assert frames.tobytes() == reference[stem][0].tobytes()
        with pytest.raises(RuntimeError, match="a loader process of this stage died"):
            for _ in loaders.in_order(["video4", "video5", "video6", "video0"]):
                pass
        started = list(loaders.processes_started)
    finally:
        loaders.close()
    assert len(started) == 2 and not any(process.is_alive() for process in started)
    assert sorted(process.exitcode for process in started) == [0, 3]


class UnpicklableError(Exception):
    def __reduce__(self):
        raise TypeError("cannot pickle this error")


class UnpicklableFailure(base.VideoLoader):
    def __getitem__(self, stem):
        raise UnpicklableError(f"{stem} failed oddly")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="loader processes: Linux")
def test_a_loaders_error_that_cannot_be_pickled_still_reaches_the_stage(tmp_path):
    folder = _videos(tmp_path, count=2)
    loaders = base.VideoLoaders(UnpicklableFailure(ShardReader(folder), _backend().spec), 2,
                                (3, 8, 8, 3))
    try:
        with pytest.raises(VidmemError, match="loading video0: .*video0 failed oddly"):
            list(loaders.in_order(["video0", "video1"]))
        started = list(loaders.processes_started)
    finally:
        loaders.close()
    assert [process.exitcode for process in started] == [0, 0]
