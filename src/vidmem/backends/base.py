"""The interface every feature backend implements, and the extract loop they all share.

The extract driver (`Backend.extract_videos`, on the per-video engine of vidmem.store.engine)
knows nothing of backend kinds: it loads each video's frames, resized to the backend's input
(`VideoLoader`, on loader processes or threads: `VideoLoaders`), batches them, calls
`extract`, and hands each video's features to `save_video`, with a per-video cache from
`video_cache`. A backend that reads no frames (`uses_frames = False`) overrides
`extract_videos` itself; one with its own output format overrides `save_video` (and
`video_cache`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import multiprocessing
import os
import pickle
import sys
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from typing import Any

import numpy as np

from vidmem.core.devices import host_threads
from vidmem.core.errors import DataError, ParamsError, VidmemError
from vidmem.core.files import atomic_dir, read_json, write_json
from vidmem.core.params import as_int
from vidmem.data.dataset import Dataset
from vidmem.store.cache import ItemCache, open_cache
from vidmem.store.engine import Todo, VideoResult, run_per_video
from vidmem.store.executor import fork_shared_array, forked_process, processes_available
from vidmem.store.shards import ShardReader
from vidmem.video.geometry import InputSpec, range_matches, resize_frames

EXTRACT_VERSION = 4  # 2: fed range in entries; 3: keyed by decoded frames; 4: uint8 resize
DEFAULT_BATCH_SIZE = 32
BATCH_KEY = "frames_per_batch"  # backend.<name>.frames_per_batch: frames per forward pass
# Keys of `backend.<name>` that cannot change a feature: the input section is keyed in its
# resolved form instead. (Heads are not here at all: `heads.<name>`.)
NOT_IN_CACHE_KEY = ("input",)
# Beside a backend's features when it has a fitted state (`Backend.state`): train copies it into
# the checkpoint, so a checkpoint alone rebuilds the backend (`Backend.load_state`).
STATE_FILE = "state.json"


@dataclass
class ExtractResult:
    videos: int
    cache_hits: int
    info: dict[str, Any]  # written to info.json; a "warnings" list is printed by the stage
    # Videos left out, with the reason (scoring new videos: one without a caption), and the
    # name of each video written (stem → file name) where the backend knows it from its inputs.
    skipped: list[dict[str, str]] = field(default_factory=list)
    video_names: dict[str, str] = field(default_factory=dict)


def read_state(features_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The fitted state an extract output holds (`STATE_FILE`); None for a backend without one."""
    path = Path(features_dir) / STATE_FILE
    return read_json(path) if path.exists() else None


def loader_threads() -> int:
    """Loaders that read, check and resize videos for extract (and threads that save their
    features): one per core (`host_threads`), so loading keeps pace with an accelerator."""
    return host_threads()


class VideoLoader:
    """One video's decoded frames at the network's input size, and the range of values they
    become there: what extract's loaders run, by stem (a map-style dataset: worker processes
    get it through fork)."""

    def __init__(self, frames: ShardReader, spec: InputSpec) -> None:
        self.frames = frames
        self.spec = spec

    def __getitem__(self, stem: str) -> tuple[np.ndarray, list[float]]:
        frames = resize_frames(self.frames.load(stem), self.spec)
        return frames, list(self.spec.fed_range(frames))


def _prefetch(items: Sequence[str], workers: int,
              load: Callable[[str], Any]) -> Iterator[tuple[str, Any]]:
    """`load` items on `workers` threads, at most `2 * workers` ahead, yielded in order, so disk
    I/O and resizing overlap compute and memory stays bounded by the lookahead, not by the data
    set."""
    depth = 2 * workers
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[str, Future]] = deque()
        queue = iter(items)
        for item in queue:
            pending.append((item, pool.submit(load, item)))
            if len(pending) >= depth:
                break
        while pending:
            item, future = pending.popleft()
            next_item = next(queue, None)
            if next_item is not None:
                pending.append((next_item, pool.submit(load, next_item)))
            yield item, future.result()


AHEAD_PER_LOADER = 2  # videos each loader process has in hand or ready
# What a loader process answers for one video: its frames when they are not in the slot (a
# video of another shape), its fed range, and the error that stopped it, if one did.
LoaderReply = tuple[np.ndarray | None, list[float] | None, Exception | None]


def _serve_loads(connection: Connection, inherited: list[Connection], load: VideoLoader,
                 slots: np.ndarray) -> None:
    """A loader process: load each (stem, slot) asked for on `connection` into that shared
    slot (the same pages as the stage's, mapped before the fork) and answer with a
    `LoaderReply`, until asked to stop (None) or the stage's end is gone."""
    # The other loaders' pipes, inherited through the fork: closed, so a loader sees the end
    # of its pipe when the stage closes it, not when every sibling has gone too.
    for other in inherited:
        other.close()
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        stem, slot = request
        try:
            frames, fed = load[stem]
            if frames.shape != slots.shape[1:]:
                reply: LoaderReply = (frames, fed, None)
            else:
                slots[slot] = frames
                reply = (None, fed, None)
        except Exception as exc:  # noqa: BLE001 - the stage raises it as its own
            reply = (None, None, exc)
        try:
            connection.send(reply)
        except (pickle.PicklingError, TypeError, AttributeError):
            # An error that cannot travel (pickling fails before anything is written): its
            # text does.
            connection.send((None, None, VidmemError(f"loading {stem}: {reply[2]!r}")))


class VideoLoaders:
    """Extract's loaders: each video of a chunk loaded ahead of the network and yielded in
    order, on `workers` processes (`processes`, on Linux, more than one loader) or threads.

    Processes, because the thread that launches the network's kernels re-acquires the GIL
    after each of them, and loader threads holding it between their system calls kept a GPU
    stage near 2,000 frames/s whatever the batch (BENCHMARKS.md). Each loader process writes a
    video's frames into a slot of shared memory mapped before the fork, and only the stem,
    the slot number and the fed range travel through its own pipe, which the stage reads and
    writes itself. (Through a `ProcessPoolExecutor`, whose per-task threads and queues live in
    the process that drives the GPU, that process spent 0.38-0.42 ms of CPU per video with a
    null network and loaders that load nothing, against 0.28-0.36 ms now.) The loaders start
    with the first chunk and serve every chunk of the stage. (PyTorch's DataLoader hands each
    item over as a new shared-memory segment, whose pages fault in on first read: 1.7 ms per
    video of 8 × 224² here, against 0.14 ms for the fixed slots.) The slots are anonymous
    shared memory, not /dev/shm (a container's 64 MB default would not hold 32 slots of 8 ×
    224²); where the memory cannot be reserved, threads load instead, and a line says so.

    `pin_slots`, if given, is called with the slots once the loader processes exist and
    returns what undoes it: a backend on a GPU page-locks them there, so each video is copied from its
    slot to the device by the copy engine, not by this process."""

    def __init__(self, load: VideoLoader, workers: int, video_shape: tuple[int, ...],
                 processes: bool = True,
                 pin_slots: Callable[[np.ndarray], Callable[[], None]] | None = None) -> None:
        self.load, self.workers, self.video_shape = load, workers, tuple(video_shape)
        self.slot_count = AHEAD_PER_LOADER * workers
        self.slots: np.ndarray | None = None
        # The loader processes, started with the first chunk, and the stage's end of each
        # one's pipe.
        self.processes_started: list[multiprocessing.Process] = []
        self.connections: list[Connection] = []
        self.pin_slots = pin_slots
        self._unpin: Callable[[], None] | None = None
        # The thread the loader processes are forked from, and what ends it (`_start_loaders`).
        self._parent: threading.Thread | None = None
        self._closed = threading.Event()
        self.processes = (processes and workers > 1 and processes_available()
                          and bool(video_shape))
        if self.processes:
            shape = (self.slot_count, *self.video_shape)
            try:
                self.slots = fork_shared_array(shape, "vidmem-extract-slots")
            except OSError as exc:
                print(f"extract: {math.prod(shape) / 2**20:.0f} MiB of shared memory for "
                      f"{workers} loader processes could not be reserved ({exc}): loading on "
                      "threads instead", file=sys.stderr)
                self.processes = False

    @property
    def frames_per_video(self) -> int:
        """Frames in each video (decode gives every video the same count; 1 when none)."""
        return self.video_shape[0] if self.video_shape else 1

    def in_order(self, stems: Sequence[str],
                 ) -> Iterator[tuple[str, tuple[np.ndarray, list[float]]]]:
        """(stem, (frames, fed range)) for each of `stems`, in order. The frames may live in
        a slot that is refilled once the next video is asked for: copy them before."""
        if not self.processes:
            yield from _prefetch(stems, self.workers, self.load.__getitem__)
            return
        slots = self.slots
        assert slots is not None
        if not self.connections:
            self._start_loaders(slots)
        queue = iter(stems)
        # Each video asked of one loader (the least busy), answered by it in the order asked,
        # so the videos come back in order by reading each one's loader in turn.
        pending: deque[tuple[str, int, int]] = deque()
        busy = [0] * self.workers

        def fill(slot: int) -> None:
            stem = next(queue, None)
            if stem is not None:
                loader = min(range(self.workers), key=busy.__getitem__)
                self.connections[loader].send((stem, slot))
                busy[loader] += 1
                pending.append((stem, slot, loader))

        try:
            for slot in range(self.slot_count):
                fill(slot)
            while pending:
                stem, slot, loader = pending[0]
                whole, fed, error = self._reply(loader)
                pending.popleft()
                busy[loader] -= 1
                if error is not None:
                    raise error
                yield stem, (slots[slot] if whole is None else whole, fed)
                fill(slot)  # the caller has copied the frames out: the slot is free
        finally:
            # A chunk given up half-way (the stage's error) leaves no loader writing into a
            # slot the next chunk would read, and no answer in a pipe for the next chunk.
            for _, _, loader in pending:
                with contextlib.suppress(RuntimeError):
                    self._reply(loader)

    def _start_loaders(self, slots: np.ndarray) -> None:
        # Forked from a thread of this object's own that lives until `close`: Linux sends a
        # loader its death signal when the *thread* that forked it ends, and the thread that
        # asks for videos (the engine's) ends before the stage closes the loaders, which were
        # then killed (SIGKILL) instead of stopping when asked.
        forked = threading.Event()
        problems: list[BaseException] = []

        def fork_and_wait() -> None:
            try:
                for _ in range(self.workers):
                    stage_end, loader_end = Pipe()
                    self.processes_started.append(forked_process(
                        _serve_loads, (loader_end, list(self.connections), self.load, slots)))
                    loader_end.close()  # the loader's alone: its death is an end of file here
                    self.connections.append(stage_end)
            except BaseException as exc:  # noqa: BLE001 - raised in the thread that asked
                problems.append(exc)
            finally:
                forked.set()
            self._closed.wait()

        self._parent = threading.Thread(target=fork_and_wait, name="vidmem-loaders",
                                        daemon=True)
        self._parent.start()
        forked.wait()
        if problems:
            raise problems[0]
        if self.pin_slots is not None:
            # Only now, with every loader forked: page-locked memory is not promised to a
            # process forked after it.
            self._unpin = self.pin_slots(slots)

    def _reply(self, loader: int) -> LoaderReply:
        try:
            return self.connections[loader].recv()
        except (EOFError, OSError) as exc:
            raise RuntimeError("a loader process of this stage died (killed, or out of "
                               "memory?); what it finished is kept in the per-video cache, run "
                               "the stage again") from exc

    def close(self) -> None:
        """Stop the loader processes (they also stop by themselves if the stage dies)."""
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.send(None)
        for process in self.processes_started:
            process.join(timeout=10)
            if process.is_alive():  # stuck in a load: it has nothing left to give
                process.kill()
                process.join()
        for connection in self.connections:
            connection.close()
        if self._parent is not None:
            self._closed.set()
            self._parent.join()
            self._parent = None
        if self._unpin is not None:
            self._unpin()
        self.connections, self.processes_started = [], []
        self.slots = self._unpin = None


class FrameBatch:
    """A batch being assembled for the network: uint8 [frames, H, W, 3] at the spec's size, in
    host memory here (a backend may assemble on its device instead: `Backend.new_batch`)."""

    def __init__(self, buffer: np.ndarray) -> None:
        self.buffer = buffer

    def __len__(self) -> int:
        return len(self.buffer)

    def put(self, start: int, frames: np.ndarray) -> None:
        """Copy `frames` in at frame `start`; their memory may be reused once this returns."""
        self.buffer[start:start + len(frames)] = frames

    def pad(self, filled: int) -> None:
        """Zero the frames from `filled` on (the last batch of a chunk is run full-size)."""
        self.buffer[filled:] = 0


# What `Backend.submit` returns: called, it waits for the batch and gives its float32 features
# and whether they are all finite.
PendingFeatures = Callable[[], tuple[np.ndarray, bool]]


class Backend(ABC):
    """Turns uint8 RGB frames, already at `spec`'s size, into one feature vector per frame.

    Subclasses set `feature_dim`, `weights` (where the weights came from, in words) and
    `expected_range` (the value range the weights were trained on, or None if unknown), and
    implement `_extract`. `random_weights` must be True whenever the weights are not trained:
    it is written next to every feature file and metric so no one mistakes such a result.

    `config` is the backend's params section (`backend.<name>`; it keys the per-video cache), and
    `cache_root` the project's `cache.dir` (None: no cache), read once by the caller.
    """

    feature_dim: int
    weights: str
    random_weights: bool = False
    expected_range: tuple[float, float] | None = None
    # False for backends that import per-video files instead of reading frames: they need no
    # decoded frames, take no `input` section, and override `extract_videos`.
    uses_frames: bool = True
    # True for a backend that fits on the training split's data (TF-IDF on captions): the
    # cross-validation stage refits it on each fold's training part.
    fits_on_split: bool = False
    # True for a backend that turns captions into features (predict reads --captions for it).
    reads_captions: bool = False
    # False for a backend whose `save_video` writes its own files (TF-for-Poets bottlenecks).
    sharded_output: bool = True
    frames: ShardReader  # the decode output being read (set by `extract_videos`)

    def __init__(self, name: str, spec: InputSpec | None, config: dict[str, Any],
                 cache_root: str | os.PathLike | None = None) -> None:
        self.name = name
        self.spec = spec
        self.config = config
        self.cache_root = cache_root
        if "batch_size" in config:  # renamed: it never meant the top-level (videos per step) one
            raise ParamsError(f"params.yaml: 'backend.{name}.batch_size' is now "
                              f"'backend.{name}.{BATCH_KEY}' (the number of frames, or captions, "
                              "per forward pass); the top-level batch_size is videos per LSTM step")
        batch = config.get(BATCH_KEY, DEFAULT_BATCH_SIZE)
        # `auto`: resolved by `auto_batch_size` once the device is known (a subclass's __init__).
        self.batch_size = 0 if batch == "auto" else as_int(batch, f"backend.{name}.{BATCH_KEY}", 1)
        self.observed_min = math.inf
        self.observed_max = -math.inf
        # Where and in which precision the network runs ({"device": "cpu", "precision": "false"},
        # see vidmem.core.devices.numerics): part of the extract cache key and of info.json, since
        # the same weights give slightly different features on another device or precision.
        self.numerics: dict[str, Any] = {}

    @abstractmethod
    def _extract(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [B, H, W, 3] → float32 [B, feature_dim]."""

    def auto_batch_size(self) -> int:
        """Frames per forward pass for `frames_per_batch: auto` on this backend's device."""
        return DEFAULT_BATCH_SIZE

    @property
    def frames_per_batch(self) -> int:
        """Frames per forward pass: `frames_per_batch` from params, `auto` resolved."""
        return self.batch_size or self.auto_batch_size()

    def _check_input(self, frames: np.ndarray) -> None:
        expected = (self.spec.height, self.spec.width, 3)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != expected:
            raise VidmemError(f"backend {self.name}: expected uint8 frames [B, {expected[0]}, "
                              f"{expected[1]}, 3], got {frames.dtype} {list(frames.shape)}; "
                              "resize them with vidmem.video.geometry.resize_frames first")

    def submit(self, frames: np.ndarray) -> PendingFeatures:
        """Start the features of uint8 [B, H, W, 3] frames at the spec's size; the returned call
        waits for them. Here the work is done at once; a backend on an accelerator overrides
        this to return before the device has finished, so the next batch is prepared meanwhile."""
        self._check_input(frames)
        features = np.asarray(self._extract(frames), dtype=np.float32)
        return lambda: (features, bool(np.isfinite(features).all()))

    def collect(self, pending: PendingFeatures, frames: int) -> np.ndarray:
        """The features `submit` started for `frames` frames, checked: float32 [frames, dim],
        all finite."""
        features, finite = pending()
        if features.shape != (frames, self.feature_dim):
            raise VidmemError(f"backend {self.name} returned features of shape "
                              f"{list(features.shape)}, expected [{frames}, {self.feature_dim}]")
        if not finite:
            raise VidmemError(f"backend {self.name} produced NaN or infinite features")
        return features

    def extract(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [B, H, W, 3] frames at the spec's size → float32 [B, feature_dim] features."""
        return self.collect(self.submit(frames), len(frames))

    def new_batch(self, frames: int) -> FrameBatch:
        """An empty batch of `frames` frames that the extract loop assembles videos in, then
        runs (`submit_batch`): in host memory here."""
        return FrameBatch(np.empty((frames, self.spec.height, self.spec.width, 3), np.uint8))

    def submit_batch(self, batch: FrameBatch) -> PendingFeatures:
        """`submit` for a batch from `new_batch`."""
        return self.submit(batch.buffer)

    def pin_host_memory(self, memory: np.ndarray) -> Callable[[], None]:
        """Make copies from `memory` (the loaders' shared slots) to this backend's device fast,
        and return what undoes it; nothing to do for a network on the CPU."""
        return lambda: None

    # --- hooks of the extract loop -------------------------------------------------------

    def video_cache(self, scratch: str | os.PathLike | None = None) -> ItemCache:
        """The per-video cache of this backend's features (results wait in `scratch` when the
        cache is off). Keyed by the resolved input spec (not its spelling in params: a preset
        name and its mapping are the same input), the rest of the backend's config and the
        numerics."""
        config = {k: v for k, v in self.config.items() if k not in NOT_IN_CACHE_KEY}
        if config.get(BATCH_KEY) == "auto":  # the size it resolved to shapes the features
            config[BATCH_KEY] = self.frames_per_batch
        return open_cache(self.cache_root, f"extract/{self.name}",
                          {"version": EXTRACT_VERSION, "backend": config,
                           "spec": self.spec.to_dict(), "numerics": self.numerics},
                          scratch=scratch, small=scratch is not None)

    def save_video(self, out_dir: Path | None, stem: str, features: np.ndarray,
                   cache: ItemCache, digest: str, facts: dict[str, Any]) -> None:
        """Keep one video's features, float32 [frames, dim], in the cache, from where the
        engine writes them into the stage's shards (a backend with `sharded_output = False`
        writes its own files into `out_dir` instead)."""
        cache.store(digest, features, facts)

    def worker_resources(self) -> dict[str, float]:
        """What one extract worker of a cluster executor asks for: a GPU when the model runs
        on CUDA here, else as many CPUs as it runs threads here (the thread count is part of
        the numerics, so a worker with other threads would make other bits)."""
        if self.numerics.get("device", "cpu").startswith("cuda"):
            return {"num_gpus": 1.0}
        return {"num_cpus": float(self.numerics.get("threads", 1))}

    def extract_videos(self, frames_dir: str | os.PathLike, out_dir: str | os.PathLike,
                       batch_size: int | None = None, progress: bool = True) -> ExtractResult:
        """Features for every video in `frames_dir` (normalize's shards) into the shards of
        `out_dir` (or the layout `save_video` writes), through the per-video engine
        (vidmem.store.engine).

        A video's cache key is its frames' sha256 from the index (nothing is hashed again), so
        videos whose (frames, backend config) were seen before come from the cache. The rest
        run in chunks of a few full batches: in this process with the model loaded here, or on
        the executor's workers, each of which loads the model once and stores its results in
        the cache, from where they are written here.
        """
        out_dir = Path(out_dir)
        batch_size = batch_size or self.frames_per_batch
        frames = self.frames = ShardReader(frames_dir)
        cache = self.video_cache(scratch=out_dir / ".entries")
        remote_worker = functools.partial(
            _ChunkExtractor, type(self), self.name, self.spec, self.config, self.cache_root,
            batch_size, Path(frames_dir).absolute(), self.numerics)
        loaders = self.video_loaders(frames)
        try:
            results = run_per_video(
                [(stem, stem) for stem in frames.stems()], cache, out_dir,
                key=lambda stem, _: frames.sha256(stem), make_worker=remote_worker,
                local_worker=lambda chunk: self.extract_chunk(chunk, cache, out_dir, batch_size,
                                                              loaders),
                # Chunks of 16 batches: small enough to spread over workers and to lose little
                # to a killed one (seconds of work on a CPU), large enough that batches stay
                # full and the pipeline's drain at each chunk's end (its last batch is waited
                # for) costs little.
                chunk_size=16 * batch_size // loaders.frames_per_video,
                resources=self.worker_resources(), in_process=not self.sharded_output,
                write_output=self.sharded_output, desc=f"extract {self.name}",
                progress=progress)
        finally:
            loaders.close()
        for result in results:
            self.record_range(*result.facts["fed_range"])
        hits = sum(result.from_cache for result in results)
        return ExtractResult(videos=len(results), cache_hits=hits,
                             info={**self.describe(), "videos": len(results)})

    def extract_chunk(self, todo: Sequence[Todo], cache: ItemCache, out_dir: Path | None,
                      batch_size: int, loaders: VideoLoaders) -> list[VideoResult]:
        """Run the network over the videos `todo` ((stem, stem, cache key) triples) in full
        batches, their frames from `loaders`, saving each video's features (`save_video`);
        returns each video's result."""
        digests = {stem: digest for stem, _, digest in todo}
        facts_of: dict[str, dict[str, Any]] = {}
        # The batch being filled, its videos (stem, frame count), its frames so far. Each video
        # is copied in as it arrives, so a loader's frames are let go at once.
        batch: FrameBatch | None = None
        videos: list[tuple[str, int]] = []
        filled = 0
        # The batch on the device: its pending features, its size, and its videos' frame counts.
        in_flight: tuple[PendingFeatures, int, list[tuple[str, int]]] | None = None

        # Each video's features are saved on writer threads: a save creates files, and file
        # creation takes milliseconds on some disks, which one thread would pay per video
        # while the accelerator waits. (A backend writing its own layout saves one at a time.)
        savers = ThreadPoolExecutor(max_workers=loader_threads() if self.sharded_output else 1)
        saved: list[Future] = []

        def finish(done: tuple[PendingFeatures, int, list[tuple[str, int]]]) -> None:
            pending, size, done_videos = done
            features = self.collect(pending, size)
            start = 0
            for stem, count in done_videos:
                saved.append(savers.submit(self.save_video, out_dir, stem,
                                           features[start:start + count], cache, digests[stem],
                                           facts_of[stem]))
                start += count

        def flush() -> None:
            nonlocal batch, videos, filled, in_flight
            if batch is None:
                return
            # Always run full-size batches (zero frames pad the last one): the same shapes give
            # the same kernels, so a video's features do not depend on which videos share its
            # batch, and an incremental run matches a full one.
            batch.pad(filled)
            pending = self.submit_batch(batch)
            # The previous batch is collected only now, while this one runs: the device never
            # waits for the host to save features.
            if in_flight is not None:
                finish(in_flight)
            in_flight = (pending, len(batch), videos)
            batch, videos, filled = None, [], 0

        for stem, (frames, fed) in loaders.in_order([stem for stem, _, _ in todo]):
            if batch is not None and filled + len(frames) > len(batch):
                flush()
            if batch is None:
                # A video longer than a batch makes a batch of its own, of its length.
                batch = self.new_batch(max(batch_size, len(frames)))
            batch.put(filled, frames)
            # The values fed for this video's real frames (padding excluded), kept with the
            # cached features so a cache hit reports the same range as fresh work.
            facts_of[stem] = {"fed_range": fed}
            videos.append((stem, len(frames)))
            filled += len(frames)
        flush()
        if in_flight is not None:
            finish(in_flight)
        with savers:
            for future in saved:
                future.result()  # a failed save is the stage's error
        return [VideoResult(stem, digest, facts_of[stem]) for stem, _, digest in todo]

    def video_loaders(self, frames: ShardReader) -> VideoLoaders:
        """The loaders of the extract loop over the shards `frames` (close them when
        done)."""
        stems = frames.stems()
        # Decode gives every video the same number of frames: the slots' shape.
        shape = (len(frames.load(stems[0])), self.spec.height, self.spec.width, 3) if stems \
            else ()
        return VideoLoaders(VideoLoader(frames, self.spec), loader_threads(), shape,
                            processes=self.loads_on_processes(), pin_slots=self.pin_host_memory)

    def loads_on_processes(self) -> bool:
        """Whether extract loads videos on processes rather than threads: where the network
        runs on an accelerator, whose pace the host must keep up with (a torch backbone on
        CUDA). On a CPU the network takes every core and loading is a small share of the work
        (threads kept extract at 0.98-0.99 of the bare forward pass on 2 cores; loader
        processes, forked from the process that holds the model, 0.68-0.90)."""
        return False

    def use_dataset(self, dataset: Dataset,  # noqa: B027 - a hook; default: nothing
                    split_file: str | os.PathLike | None) -> None:
        """Take the data set (`vidmem.data.dataset.open_dataset`) and the split file (train /
        val / test lists: anything fit on data must use the training videos only); the extract
        stage calls this for every backend. Frame backends need nothing from them; a text
        backend reads the captions and fits on the training split."""

    # --- what the backend learns from data, and how it comes back -----------------------

    def fit(self, train_videos: Sequence[str]) -> None:  # noqa: B027 - a hook; default: nothing
        """Fit what this backend learns from data (`fits_on_split`: a TF-IDF vocabulary) on
        these training videos of the data set `use_dataset` gave, and on nothing else. A frozen
        network learns nothing."""

    def state(self) -> dict[str, Any] | None:
        """What the features depend on beyond params.yaml, as plain JSON values: what `fit`
        learned (a TF-IDF's terms and IDF weights), or the digest of weights chosen outside
        params (a sentence model). The extract stage writes it beside the features
        (`STATE_FILE`), train into the checkpoint, and `load_state` takes it back, so new videos
        get the features the head was trained on. None: a frozen network named by params."""
        return None

    def load_state(self, state: Any, source: str) -> None:
        """Make features with `state` (what `state()` gave, read from `source`) from now on,
        refitting nothing. It is checked against this backend's params first: DataError
        naming `source` and the field when it does not fit them."""
        if state is not None:
            raise DataError(f"{source}: holds a fitted state for backend {self.name}, whose "
                            f"kind {self.config.get('kind')!r} has none; retrain it with "
                            "`dvc repro`")

    def features_of(self, videos: Sequence[str]) -> np.ndarray:
        """float32 [len(videos), 1, dim]: these videos' features made in memory (cross-
        validation refits a `fits_on_split` backend per fold and takes its features so). Only
        a backend that reads no frames can; the others' features come from the extract stage."""
        raise VidmemError(f"backend {self.name} makes its features from decoded frames: they "
                          "come from the extract stage, not from `features_of`")

    def use_inputs(self, folder: str | os.PathLike) -> None:  # noqa: B027 - a hook; default: nothing
        """Read per-video inputs from `folder` (`predict --videos`). Frame backends get their
        inputs from decode, so this does nothing; a backend that reads files of
        its own (`uses_frames = False`) reads them from `folder` instead of its params."""

    # --- what was fed, and what made the features ----------------------------------------

    def record_range(self, low: float, high: float) -> None:
        """Note the min/max value fed to the network for one video's frames (the extract loop
        calls this per video, from the cache's facts when the video was cached, so the record is
        the same whether a run computed or reused the features)."""
        self.observed_min = min(self.observed_min, float(low))
        self.observed_max = max(self.observed_max, float(high))

    def observed_range(self) -> tuple[float, float] | None:
        """The min and max value fed to the network so far (None: nothing fed)."""
        if self.observed_min > self.observed_max:
            return None
        return self.observed_min, self.observed_max

    def range_matches(self) -> bool | None:
        """Whether what was fed fits the range the weights expect (None: not known); see
        `vidmem.video.geometry.range_matches`."""
        return range_matches(self.observed_range(), self.expected_range)

    @classmethod
    def weights_input_range(cls, name: str, config: dict[str, Any]) -> tuple[float, float] | None:
        """The input value range the weights of backend `name` configured by `config` (its
        `backend.<name>` section) were trained on, known without loading them: what the
        normalize stage checks before any network runs. Defaults to the class's
        `expected_range`; a backend whose range depends on its config overrides this."""
        return cls.expected_range

    def describe(self) -> dict[str, Any]:
        """Facts stored beside the features: what produced them, and what was fed."""
        fed = self.observed_range()
        observed = None if fed is None else [round(fed[0], 4), round(fed[1], 4)]
        return {
            "backend": self.name,
            "kind": self.config.get("kind"),
            "feature_dim": self.feature_dim,
            "weights": self.weights,
            "random_weights": self.random_weights,
            "input": self.spec.to_dict(),
            "expected_input_range": list(self.expected_range) if self.expected_range else None,
            "observed_input_range": observed,
            "input_range_matches": self.range_matches(),
            "numerics": self.numerics,
        }


class _ChunkExtractor:
    """An extract worker of a cluster executor: builds the backend (loading the model) once,
    then stores the features of each chunk of videos in the per-video cache."""

    def __init__(self, cls: type[Backend], name: str, spec: InputSpec | None,
                 config: dict[str, Any], cache_root: str | os.PathLike | None,
                 batch_size: int, frames_dir: Path, stage_numerics: dict[str, Any]) -> None:
        self.backend = cls(name, spec, config, cache_root)
        if self.backend.numerics != stage_numerics:
            raise VidmemError(
                f"backend {name}: the workers run it with {self.backend.numerics}, the stage's "
                f"process with {stage_numerics}, so their cache entries would not match; set "
                f"backend.{name}.device explicitly, or run the stage on a machine like the "
                "workers")
        self.backend.frames = ShardReader(frames_dir)
        self.cache = self.backend.video_cache()
        self.batch_size = batch_size
        # Kept for the worker's life; its loader processes stop with it.
        self.loaders = self.backend.video_loaders(self.backend.frames)

    def __call__(self, chunk: list[Todo]) -> list[VideoResult]:
        return self.backend.extract_chunk(chunk, self.cache, None, self.batch_size,
                                          self.loaders)


INFO_FILE = "info.json"  # what made an extract output's features (feature_dim, fed range, ...)


def extract_step(frames_dir: str | os.PathLike, out_dir: str | os.PathLike, backend: Backend,
                 progress: bool = True) -> ExtractResult:
    """The extract stage: one backend's features for every video plus what made them
    (`info.json`), written whole or not at all."""
    with atomic_dir(out_dir) as out:
        result = backend.extract_videos(frames_dir, out, progress=progress)
        state = backend.state()
        if state is not None:
            write_json(out / STATE_FILE, state)
        write_json(out / INFO_FILE, result.info)
    return result
