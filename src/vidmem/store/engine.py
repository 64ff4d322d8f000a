"""The one per-video engine: cache key → look up → run the misses on the executor → store →
shard. Decode and extract both run through `run_per_video`; they only say how to key a video
and what a worker does with a chunk of them.

1. Every video gets its cache key (decode: the file's sha256, read in threads; extract: the
   decoded frames' sha256 from decode's index) and is looked up in the per-video cache. A hit
   is done; a video whose key cannot be made (an unreadable file) is skipped and reported.
2. The misses, in chunks, go to workers on the executor (vidmem.store.executor): threads here,
   or actors of a Ray cluster. A worker is built once (an extract worker loads its model
   once) and stores each video's result in the cache, from where it comes back.
3. As results arrive, in name order, each video's entry is written into the stage output's
   shards (vidmem.store.shards), so shards are written while later videos are still worked on.

The output is made from cache entries alone, whichever executor made them and whether they were
hits, so it is byte for byte what an uncached local run writes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from vidmem.store.cache import ItemCache
from vidmem.store.executor import ChunkWorker, chunked, get_executor, local_map_chunks
from vidmem.store.shards import ShardWriter

KEY_THREADS = 8  # videos keyed and looked up at once (hashing reads whole files)


@dataclass(frozen=True)
class VideoResult:
    """What became of one video: its cache entry's facts (a hit, or what its worker stored),
    or why it was skipped."""

    stem: str
    digest: str
    facts: dict[str, Any] | None = None  # None: skipped
    error: str | None = None  # why it was skipped
    from_cache: bool = False


class Skipped(Exception):  # noqa: N818 - a per-video outcome, not a failure of the stage
    """Raised by a key function for a video the stage skips and reports (a bad input under
    `data.on_bad_input: skip`); any other exception stops the stage. A worker reports such a
    video as a `VideoResult` with its `error` instead."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# A video to work on: (stem, source, cache key). The source is what the worker reads: a
# video file for decode, the stem in decode's shards for extract.
Todo = tuple[str, Any, str]


def _look_up(cache: ItemCache, key: Callable[[str, Any], str], stem: str,
             source: Any) -> VideoResult | Todo:
    try:
        digest = key(stem, source)
    except Skipped as skipped:
        return VideoResult(stem, "", error=skipped.reason)
    facts = cache.fetch(digest)
    if facts is None:
        return stem, source, digest
    return VideoResult(stem, digest, facts, from_cache=True)


def run_per_video(items: Sequence[tuple[str, Any]], cache: ItemCache, out_dir: str | os.PathLike,
                  *, key: Callable[[str, Any], str], make_worker: Callable[[], ChunkWorker],
                  local_worker: ChunkWorker | None = None,
                  chunk_size: Callable[[list[Todo]], int] | int = 1, threads: int = 1,
                  resources: dict[str, float] | None = None, in_process: bool = False,
                  processes: bool = False,
                  write_output: bool = True, desc: str = "videos", progress: bool = True,
                  ) -> list[VideoResult]:
    """Every video of `items` ((stem, source) pairs) into the shards of `out_dir`; returns
    what became of each, in stem order.

    `key(stem, source)` is the video's cache key (or raises `Skipped`). `make_worker()` builds
    a worker: `worker(chunk)` takes a list of `Todo`, stores each video's array in `cache`, and
    returns one `VideoResult` per video (raising only to stop the stage); `local_worker`, when
    given, is a worker already built in this process (the stage's loaded model), used on one
    thread instead of `make_worker` when the work runs here. Chunks hold
    `chunk_size` videos (or `chunk_size(todo)`); `threads` workers run at once here, and
    `resources` is what one worker needs on a cluster. `in_process` keeps the work in this
    process whatever the executor (a backend with no per-video cache to hand results over).
    `processes`: locally, the `threads` workers are processes of this machine instead
    (vidmem.store.executor.local_map_chunks; the cache, or its scratch folder, must be files).
    `write_output` False: no shards are written and the cache is left as it is (the workers
    write the output themselves, or the caller writes it from the results).
    """
    executor = get_executor()
    remote = not (executor.writes_outputs or in_process)
    if remote:
        executor.check_handover(cache.enabled)
    elif not executor.writes_outputs:
        print(f"{desc}: runs in this process, not on {executor.name} (it has no per-video cache "
              "to hand results over)", file=sys.stderr)
    order = sorted(items, key=lambda item: item[0])
    looked: list[VideoResult | Todo] = []
    with ThreadPoolExecutor(KEY_THREADS) as pool:
        for some in chunked(order, 64 * KEY_THREADS):  # a bounded number of lookups in flight
            looked += pool.map(lambda item: _look_up(cache, key, *item), some)
    todo: list[Todo] = [entry for entry in looked if not isinstance(entry, VideoResult)]
    size = chunk_size(todo) if callable(chunk_size) else chunk_size
    chunks = chunked(todo, max(1, size))
    if remote:
        chunk_results = executor.map_chunks(make_worker, chunks, resources or {"num_cpus": 1.0})
    else:
        chunk_results = (local_map_chunks(lambda: local_worker, chunks, 1) if local_worker
                         else local_map_chunks(make_worker, chunks, threads, processes))
    results = _in_order(looked, chunks, chunk_results)
    bar = tqdm(total=len(order), initial=len(order) - len(todo), desc=desc, unit="video",
               disable=not progress)
    writer = ShardWriter(out_dir, cache, {}) if write_output else None
    done: list[VideoResult] = []
    try:
        for result, worked_on in results:
            if writer is not None and result.facts is not None:
                writer.names[result.digest] = result.stem
                writer.add(result.stem, result.digest)
            bar.update(worked_on)
            done.append(result)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        bar.close()
        # Release the workers now (a cluster's actors hold CPUs or GPUs the next stage needs),
        # not when the generator is garbage-collected.
        chunk_results.close()
    if writer is not None:
        writer.close()
    return done


def _in_order(looked: list[VideoResult | Todo], chunks: list[list[Todo]],
              chunk_results: Iterator[list[VideoResult]]) -> Iterator[tuple[VideoResult, bool]]:
    """Every video's result in stem order, and whether a worker made it: hits and skips as
    looked up, the rest as their chunks come back (chunks are consecutive runs of the misses,
    returned in order)."""
    sizes = iter([len(chunk) for chunk in chunks])
    pending: Iterator[VideoResult] = iter(())
    left = 0  # results of the current chunk not yet taken
    for entry in looked:
        if isinstance(entry, VideoResult):
            yield entry, False
            continue
        if not left:
            chunk_size = next(sizes)
            returned = list(next(chunk_results))
            if len(returned) != chunk_size:
                raise RuntimeError(f"a worker returned {len(returned)} results for a chunk of "
                                   f"{chunk_size} videos")
            pending, left = iter(returned), chunk_size
        result = next(pending)
        left -= 1
        if result.stem != entry[0]:
            raise RuntimeError(f"a worker returned {result.stem!r} where {entry[0]!r} was due")
        yield result, True
