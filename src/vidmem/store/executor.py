"""Where the per-video work of decode and extract runs: `local` or `ray` (the engine that
feeds it is vidmem.store.engine).

`VIDMEM_EXECUTOR=local` (the default) runs it in threads of the stage's own process, as always.
`VIDMEM_EXECUTOR=ray` runs it on Ray: `ray.init()` with no address starts an embedded Ray on this
machine (every CPU, no dashboard), and `RAY_ADDRESS` or a running `ray start --head` joins that
cluster instead, as Ray's own tools do.

The switch is an environment variable, not a params key: no stage declares it, so choosing an
executor never re-runs a stage, and both executors write byte-identical outputs (a test checks
the sha256 of every stage output on the demo).

On Ray, workers hand their results over through the per-video cache (`cache.dir`, a folder on
one machine or an `s3://` URL that every worker reaches): a worker stores its entries in the
cache and returns only small facts, then the stage writes the entries into its output shards (16
threads read ahead, for an object store's latency; vidmem.store.shards). No
frames or features travel through Ray's object store, and a driver killed mid-run loses
nothing the workers finished: the re-run takes those videos from the cache.

Ray Core actors rather than Ray Data: the stages are separate DVC processes, so Ray Data's
streaming between operators has nothing to stream, and it costs more to start (64 tasks of 50 ms
on 2 CPUs: 3.6 s through `Dataset.map`, 2.7 s as Ray Core tasks, measured with Ray 2.60).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import mmap
import multiprocessing
import os
import signal
import sys
import threading
from abc import ABC
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import numpy as np

from vidmem.core.errors import ParamsError

EXECUTOR_ENV = "VIDMEM_EXECUTOR"
EXECUTORS = ("local", "ray")

Item = TypeVar("Item")
# A stateful worker: built once (it loads a model), then called on chunks of items.
ChunkWorker = Callable[[list[Any]], Any]


class Executor(ABC):
    """Runs the per-video engine's workers. `writes_outputs` says whether they run in the
    stage's own process (locally), or elsewhere, so that results must come through the cache."""

    name: str
    writes_outputs: bool

    def check_handover(self, cache_on: bool) -> None:
        """Stop with a clear message when results would have no way back (see the module)."""
        if not self.writes_outputs and not cache_on:
            raise ParamsError(f"{EXECUTOR_ENV}={self.name} hands results over through the "
                              "per-video cache, but cache.dir is null: set it to a folder (or "
                              "an s3:// URL every worker reaches)")

    def map_chunks(self, make_worker: Callable[[], ChunkWorker], chunks: Sequence[list[Any]],
                   resources: dict[str, float]) -> Iterator[Any]:
        """Results of stateful workers over `chunks`, in order. Each worker is built once by
        `make_worker` (loading a model once, not once per chunk); `resources` is what one
        worker needs (`num_cpus`, or `num_gpus`). Only executors that run work elsewhere
        (`writes_outputs` False) have it: locally, the engine calls `local_map_chunks`."""
        raise NotImplementedError(f"the {self.name} executor runs work in the stage's own "
                                  "process")


class LocalExecutor(Executor):
    """Threads in this process, or worker processes on this machine: nothing to install or
    start."""

    name = "local"
    writes_outputs = True


def local_map_chunks(make_worker: Callable[[], ChunkWorker], chunks: Sequence[list[Any]],
                     threads: int, processes: bool = False) -> Iterator[Any]:
    """Results of workers over `chunks`, in order, on `threads` threads of this process, each
    with its own worker from `make_worker` (built on its first chunk); with `processes`, on as
    many worker processes of this machine (`worker_process_pool`, each building its worker
    once) when there is more than one worker and more than one chunk, on Linux (elsewhere a
    forked process may not use every system library, and threads do the work). Worker
    processes hand results back as small facts, their arrays through the per-video cache (a
    folder: the cache, or the stage's scratch folder), never through the pipe."""
    workers = max(1, threads)
    pool: ThreadPoolExecutor | ProcessPoolExecutor
    if processes and workers > 1 and len(chunks) > 1 and processes_available():
        pool = worker_process_pool(workers, _build_chunk_worker, (make_worker,))
        run: Callable[[list[Any]], Any] = _run_chunk_in_process
    else:
        pool = ThreadPoolExecutor(max_workers=workers)
        run = functools.partial(_run_chunk_in_thread, make_worker, threading.local())
    window = 4 * workers  # chunks in flight: every worker busy, memory bounded
    pending: deque[Future] = deque()
    try:
        for chunk in chunks:
            pending.append(pool.submit(run, chunk))
            if len(pending) >= window:
                yield process_result(pending.popleft())
        while pending:
            yield process_result(pending.popleft())
    finally:
        # A stage that stops early (a bad video under `fail`) does not wait for the rest.
        pool.shutdown(wait=True, cancel_futures=True)


def _run_chunk_in_thread(make_worker: Callable[[], ChunkWorker], local: threading.local,
                         chunk: list[Any]) -> Any:
    if not hasattr(local, "worker"):  # each thread builds its worker on its first chunk
        local.worker = make_worker()
    return local.worker(chunk)


_PROCESS_WORKER: ChunkWorker | None = None  # the worker of this worker process


def _set_up_worker_process(stage_pid: int, initializer: Callable[..., None],
                           initargs: tuple) -> None:
    # Die with the stage: a stage killed with SIGKILL cannot stop its pool, and a worker
    # forked with its siblings holds the pool's pipes open, so it would wait for work forever
    # (and keep the stage's stdout open for whoever reads it). PR_SET_PDEATHSIG = 1.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() != stage_pid:
        os._exit(1)  # the stage died before the line above took effect
    # Ctrl-C reaches the whole process group: the stage's own process stops the pool, and a
    # worker finishing its work meanwhile prints no traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch = sys.modules.get("torch")
    if torch is not None:
        # One thread per worker process (they run one per core), as PyTorch's DataLoader
        # workers do: an intra-op pool inherited through fork is not safe to use.
        torch.set_num_threads(1)
    initializer(*initargs)


def worker_process_pool(processes: int, initializer: Callable[..., None],
                        initargs: tuple = ()) -> ProcessPoolExecutor:
    """A pool of `processes` worker processes of this machine, each set up by
    `initializer(*initargs)`, for per-video work that holds the GIL between its system calls:
    threads of one process would queue for the GIL (and keep a thread that drives a GPU
    waiting for it), processes do not.

    Workers are forked from this process, all at once before the pool's own thread starts
    (as Python does for a fork pool): they start in milliseconds with what is imported and
    mapped here (shared memory made before the fork is shared with them; nothing is
    pickled), and a caller's script needs no `if __name__ == "__main__"` guard (a fork server
    or spawn re-runs it in every worker). What they inherit must stand a fork (the S3 cache's
    client is made again in a forked process). They die with this process, ignore Ctrl-C
    (this process stops the pool), and run torch on one thread. Linux only
    (`processes_available`). Linux sends the death signal when the *thread* that forked a
    worker ends, so use the pool from one thread that outlives it (the engine's own
    thread)."""
    return ProcessPoolExecutor(max_workers=processes,
                               mp_context=multiprocessing.get_context("fork"),
                               initializer=_set_up_worker_process,
                               initargs=(os.getpid(), initializer, initargs))


def forked_process(target: Callable[..., None], args: tuple = ()) -> multiprocessing.Process:
    """One worker process forked from this one and started, set up as `worker_process_pool`'s
    workers are (it dies with this process, ignores Ctrl-C, runs torch on one thread), running
    `target(*args)`: for a worker this process talks to over its own pipe, without a pool's
    per-task threads and queues in between. As there, it dies when the thread that forked it
    ends: fork it from a thread that outlives it (extract's loaders: a thread of their own that
    lives until they are closed)."""
    process = multiprocessing.get_context("fork").Process(
        target=_set_up_worker_process, args=(os.getpid(), target, args), daemon=True)
    process.start()
    return process


def processes_available() -> bool:
    """Whether per-video work may run on `worker_process_pool` here: on Linux (elsewhere a
    forked process may not use every system library, and threads do the work)."""
    return sys.platform.startswith("linux")


def fork_shared_array(shape: tuple[int, ...], name: str) -> np.ndarray:
    """A zero-filled uint8 array of `shape` in anonymous shared memory (Linux `memfd_create`):
    processes forked after it write into the pages this process reads.

    Not in /dev/shm, which a container caps at 64 MB by default; and its pages are reserved
    here (`posix_fallocate`), so memory that cannot hold it is an OSError now, not a SIGBUS in
    a worker half-way through a stage."""
    size = max(1, math.prod(shape))
    if not hasattr(os, "memfd_create"):  # a C library older than glibc 2.27
        raise OSError("this Python has no os.memfd_create")
    descriptor = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.posix_fallocate(descriptor, 0, size)
        memory = mmap.mmap(descriptor, size)  # MAP_SHARED: what a forked child writes is seen here
    finally:
        os.close(descriptor)  # the mapping keeps the memory
    return np.frombuffer(memory, np.uint8).reshape(shape)


def process_result(future: Future) -> Any:
    """A worker's result; a worker process that died is the stage's error, saying so."""
    try:
        return future.result()
    except BrokenProcessPool as exc:
        raise RuntimeError("a worker process of this stage died (killed, or out of memory?); "
                           "what it finished is kept in the per-video cache, run the stage "
                           "again") from exc


def _build_chunk_worker(make_worker: Callable[[], ChunkWorker]) -> None:
    global _PROCESS_WORKER
    _PROCESS_WORKER = make_worker()


def _run_chunk_in_process(chunk: list[Any]) -> Any:
    assert _PROCESS_WORKER is not None, "the worker process was not started by its pool"
    return _PROCESS_WORKER(chunk)


class _ChunkActor:
    """A Ray actor holding one worker (one loaded model) for its whole life."""

    def __init__(self, make_worker: Callable[[], ChunkWorker]) -> None:
        self.worker = make_worker()

    def run(self, chunk: list[Any]) -> Any:
        return self.worker(chunk)


class RayExecutor(Executor):
    """A pool of Ray actors, each holding one worker (one ffmpeg runner, one loaded model).

    An actor that dies is restarted, rebuilds its worker (reloading its model) and retries its
    chunk (`max_restarts`, `max_task_retries`). Work is idempotent (it fills a
    content-addressed cache), so a retry writes the same bytes.
    """

    name = "ray"
    writes_outputs = False

    def __init__(self) -> None:
        import ray  # only for this executor: `local` needs no Ray installed

        if not ray.is_initialized():
            # No address: RAY_ADDRESS, or a cluster from `ray start --head` on this machine,
            # or else a new embedded Ray with every CPU of this machine.
            ray.init(include_dashboard=False, logging_level="WARNING", log_to_driver=True)
        self.ray = ray
        print(f"{EXECUTOR_ENV}=ray: per-video work on Ray {ray.__version__}, {self.cpus()} CPU(s) "
              f"and {self.gpus()} GPU(s) (node {ray.util.get_node_ip_address()})",
              file=sys.stderr)

    def cpus(self) -> int:
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def gpus(self) -> int:
        return int(self.ray.cluster_resources().get("GPU", 0))

    @contextlib.contextmanager
    def _own_errors(self) -> Iterator[None]:
        """The work's own error (a bad video under `on_bad_input: fail`, a params error) is
        raised as itself, so the stage reports it exactly as it does locally."""
        try:
            yield
        except self.ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise

    def _get(self, ref: Any) -> Any:
        with self._own_errors():
            return self.ray.get(ref)

    def map_chunks(self, make_worker: Callable[[], ChunkWorker], chunks: Sequence[list[Any]],
                   resources: dict[str, float]) -> Iterator[Any]:
        if not chunks:
            return
        # As many actors as the cluster has room for. Ray gives an actor of n CPUs
        # OMP_NUM_THREADS=n, so a model runs there with as many threads as it would here.
        kind, per_actor = ("GPU", resources["num_gpus"]) if resources.get("num_gpus") else \
            ("CPU", resources.get("num_cpus", 1))
        available = self.gpus() if kind == "GPU" else self.cpus()
        if per_actor > available:
            raise ParamsError(f"an extract worker needs {per_actor:g} {kind}(s) (as many as "
                              f"the model uses in this process), but the Ray cluster has "
                              f"{available}: add nodes, or run the stage with "
                              f"{EXECUTOR_ENV}=local")
        # Named after the worker's class, so `ray list actors` (and the process title,
        # ray::DecodeWorker.run) says what each actor does.
        worker_class = getattr(make_worker, "func", make_worker)
        name = getattr(worker_class, "__name__", "Worker")
        actor_class = self.ray.remote(max_restarts=-1, max_task_retries=-1, **resources)(
            type(name if name.isidentifier() else "Worker", (_ChunkActor,), {}))
        actors = [actor_class.remote(make_worker)
                  for _ in range(min(int(available // per_actor), len(chunks)))]
        try:
            # Two chunks queued per actor, so an actor never waits for the driver between
            # chunks; results are taken in order, chunk i from actor i mod n.
            pending: deque[Any] = deque()
            for index, chunk in enumerate(chunks):
                pending.append(actors[index % len(actors)].run.remote(chunk))
                if len(pending) >= 2 * len(actors):
                    yield self._get(pending.popleft())
            while pending:
                yield self._get(pending.popleft())
        finally:
            for actor in actors:
                self.ray.kill(actor)


def executor_name() -> str:
    name = os.environ.get(EXECUTOR_ENV, "local").strip().lower() or "local"
    if name not in EXECUTORS:
        raise ParamsError(f"{EXECUTOR_ENV}={name!r} is not an executor: use one of "
                          f"{', '.join(EXECUTORS)} (unset means local)")
    return name


_RAY: RayExecutor | None = None


def get_executor() -> Executor:
    """The executor `VIDMEM_EXECUTOR` names (one Ray connection per process)."""
    global _RAY
    if executor_name() == "local":
        return LocalExecutor()
    if _RAY is None:
        try:
            _RAY = RayExecutor()
        except ImportError as exc:
            raise ParamsError(f"{EXECUTOR_ENV}=ray needs Ray: pip install -r requirements.txt "
                              "(it pins ray)") from exc
    return _RAY


def chunked(items: Iterable[Item], size: int) -> list[list[Item]]:
    """Consecutive chunks of at most `size` items."""
    chunks: list[list[Item]] = []
    for item in items:
        if not chunks or len(chunks[-1]) >= size:
            chunks.append([])
        chunks[-1].append(item)
    return chunks
