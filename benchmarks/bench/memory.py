"""Memory as the data set grows: concat → train (2 epochs) → evaluate on synthetic precomputed
features (random float32, 8 × 1280 per video) at N = 2,000, 8,000 and 32,000 videos, through the
library's public functions, each step in a process of its own so its peak RSS is its own. And
training samples/s with the features streamed from disk vs the whole array in memory."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from bench.harness import WORK, in_child, own_high_water_kb, reset_own_high_water

FRAMES, DIM = 8, 1280


def make_features(folder: Path, count: int) -> None:
    """An extract output (shards + index.json, written by the library's shard writer) of
    `count` videos of random features, each video's from its own seed: the first n videos are
    the same at every size."""
    from vidmem.store.shards import write_arrays

    shutil.rmtree(folder, ignore_errors=True)
    write_arrays(folder, ((f"video{i:06d}", np.random.default_rng(i).standard_normal(
        (FRAMES, DIM), dtype=np.float32)) for i in range(count)))


def _train_config(args: argparse.Namespace, epochs: int):
    from vidmem.core.params import TrainConfig

    return TrainConfig(lr=1e-4, epochs=epochs, batch_size=1000, target="short-term_memorability",
                       hidden_size=args.memory_hidden, num_layers=3, dropout=0.0, seed=0,
                       device="auto", shuffle_train_labels=False)


def _split(count: int) -> dict[str, np.ndarray]:
    order = np.random.default_rng(0).permutation(count)
    train, val = int(count * 0.75), int(count * 0.875)
    return {"train": np.sort(order[:train]), "val": np.sort(order[train:val]),
            "test": np.sort(order[val:])}


def _targets(count: int) -> np.ndarray:
    return np.random.default_rng(1).uniform(0.4, 1.0, count).astype(np.float32)


def phase_memory_concat(args: argparse.Namespace) -> dict:
    from vidmem.store.features import concat_features

    names = [f"video{i:06d}.webm" for i in range(args.memory_n)]
    out = WORK / f"memory_concat_{args.memory_n}"
    start = time.perf_counter()
    concat_features(Path(args.source), names, out)
    return {"seconds": round(time.perf_counter() - start, 2)}


def phase_memory_train(args: argparse.Namespace) -> dict:
    from vidmem.learn.training import save_checkpoint, train_model
    from vidmem.store.concatenated import load_concat

    features, _ = load_concat(WORK / f"memory_concat_{args.memory_n}")
    split = _split(len(features))
    start = time.perf_counter()
    result = train_model(features, _targets(len(features)), split["train"], split["val"],
                         _train_config(args, 2), progress=False)
    seconds = time.perf_counter() - start
    save_checkpoint(result.checkpoint, WORK / f"memory_model_{args.memory_n}.pt")
    return {"seconds": round(seconds, 2), "epochs": 2,
            "samples_per_s": round(2 * len(split["train"]) / seconds, 1)}


def phase_memory_evaluate(args: argparse.Namespace) -> dict:
    from vidmem.learn.metrics import regression_metrics
    from vidmem.learn.training import load_checkpoint, predict_scores
    from vidmem.store.concatenated import load_concat

    features, _ = load_concat(WORK / f"memory_concat_{args.memory_n}")
    test = _split(len(features))["test"]
    model, checkpoint = load_checkpoint(WORK / f"memory_model_{args.memory_n}.pt")
    start = time.perf_counter()
    predicted = predict_scores(model, checkpoint, features, test)
    regression_metrics(_targets(len(features))[test], predicted, 1000, 0)
    return {"seconds": round(time.perf_counter() - start, 2)}


def phase_memory_throughput(args: argparse.Namespace) -> dict:
    """One epoch with the features streamed from disk and one with the whole array in memory
    (today's in-memory path: the same `train_model`, handed a NumPy array), taking turns."""
    from vidmem.learn.training import train_model
    from vidmem.store.concatenated import load_concat

    on_disk, _ = load_concat(WORK / f"memory_concat_{args.memory_n}")
    in_memory = np.asarray(on_disk)
    split = _split(len(on_disk))
    targets = _targets(len(on_disk))
    seconds = {"streamed": 0.0, "in_memory": 0.0}
    for turn in range(2):  # alternate who goes first, so a trend in load favours neither
        sides = [("streamed", on_disk), ("in_memory", in_memory)]
        for name, features in (sides if turn == 0 else sides[::-1]):
            start = time.perf_counter()
            train_model(features, targets, split["train"], split["val"],
                        _train_config(args, 1), progress=False)
            seconds[name] += time.perf_counter() - start
    samples = 2 * len(split["train"])
    return {"videos": len(on_disk), "streamed_samples_per_s": round(samples / seconds["streamed"], 1),
            "in_memory_samples_per_s": round(samples / seconds["in_memory"], 1),
            "stream_over_inmemory": round(seconds["in_memory"] / seconds["streamed"], 3)}


SPARSE_BYTES = 4 * 2**30  # the container of `phase_memory_matroska`


def phase_memory_matroska(args: argparse.Namespace) -> dict:
    """Decode's frame counter on a 4 GB WebM: a real clip's first bytes, then a hole (a sparse
    file: no disk used). The walk reads through a window, so memory does not follow the file."""
    from bench.videos import make_videos
    from vidmem.video.matroska import video_packet_count

    clip = make_videos(argparse.Namespace(seconds=1.0, fps=8, width=64, height=48),
                       WORK / "matroska_clip", 0, 1)[0]
    big = WORK / "sparse.webm"
    with open(big, "wb") as f:
        f.write(clip.read_bytes())
        f.truncate(SPARSE_BYTES)
    # This process's own high-water mark: ru_maxrss here would start at run.py's size, and
    # a growth below it (a few hundred MB read whole) would read as 0.
    reset_own_high_water()
    before = own_high_water_kb()
    start = time.perf_counter()
    count = video_packet_count(big)
    seconds = time.perf_counter() - start
    growth = own_high_water_kb() - before
    big.unlink()
    return {"file_bytes": SPARSE_BYTES, "count": count, "seconds": round(seconds, 3),
            "peak_rss_growth_mb": round(growth / 1024, 1)}


PHASES = {"memory_matroska": phase_memory_matroska, "memory_concat": phase_memory_concat,
          "memory_train": phase_memory_train,
          "memory_evaluate": phase_memory_evaluate, "memory_throughput": phase_memory_throughput}


def bench_memory(args: argparse.Namespace) -> dict:
    sizes = args.memory_sizes
    result: dict = {"frames": FRAMES, "dim": DIM, "hidden_size": args.memory_hidden,
                    "per_n": {}}
    for n in sizes:
        subset = WORK / f"memory_features_{n}"
        print(f"memory: writing {n} videos' features ...", flush=True)
        make_features(subset, n)
        extra = ("--memory-n", str(n), "--memory-hidden", str(args.memory_hidden))
        row = {phase: in_child(f"memory_{phase}", args, "-", subset, extra)
               for phase in ("concat", "train", "evaluate")}
        result["per_n"][str(n)] = {
            "concat_peak_rss_mb": row["concat"]["peak_rss_mb"], "concat_s": row["concat"]["seconds"],
            "train_peak_rss_mb": row["train"]["peak_rss_mb"], "train_s": row["train"]["seconds"],
            "train_samples_per_s": row["train"]["samples_per_s"],
            "evaluate_peak_rss_mb": row["evaluate"]["peak_rss_mb"],
            "features_mb": round(n * FRAMES * DIM * 4 / 2**20, 1)}
        print(n, json.dumps(result["per_n"][str(n)]), flush=True)
    small, large = result["per_n"][str(min(sizes))], result["per_n"][str(max(sizes))]
    result["peak_rss_growth_32k_over_2k"] = round(
        max(large["concat_peak_rss_mb"], large["train_peak_rss_mb"],
            large["evaluate_peak_rss_mb"]) /
        max(small["concat_peak_rss_mb"], small["train_peak_rss_mb"],
            small["evaluate_peak_rss_mb"]), 3)
    throughput_n = args.memory_throughput_n
    throughput = in_child("memory_throughput", args, "-", WORK / f"memory_features_{throughput_n}",
                          ("--memory-n", str(throughput_n), "--memory-hidden",
                           str(args.memory_hidden)))
    result["throughput"] = throughput
    result["stream_over_inmemory"] = throughput["stream_over_inmemory"]
    result["matroska_sparse"] = in_child("memory_matroska", args, "-", WORK)
    return result
