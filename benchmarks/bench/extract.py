"""Extract: frames/s through the extract code (files on disk, batching, prefetch) vs the bare
work of the backend on pre-made batches, taking turns in one process; peak RSS of each side from
child processes; memory on a quarter of the videos vs all; mixed precision vs fp32."""

from __future__ import annotations

import argparse
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from bench.harness import (
    WORK,
    bench_params,
    copy_videos,
    frame_count,
    in_child,
    load_backend,
    synchronize,
    timed,
)
from vidmem.backends import input_spec
from vidmem.store.shards import ShardReader
from vidmem.video.geometry import resize_frames


class Floor:
    """A backend's bare work on one pre-made batch, repeated: for torch backbones the forward
    pass on a ready tensor (no file reading, conversion or batching); for other backends
    `extract` on ready uint8 frames."""

    def __init__(self, backend, batch_size: int) -> None:
        import torch

        from vidmem.backends.torch_backbones import TorchBackbone

        spec = backend.spec
        if isinstance(backend, TorchBackbone):
            x = torch.randn(batch_size, 3, spec.height, spec.width, device=backend.device)
            x = x.contiguous(memory_format=torch.channels_last)
            self.call = lambda: backend.forward(x)
        else:
            frames = np.random.default_rng(0).integers(
                0, 256, (batch_size, spec.height, spec.width, 3), dtype=np.uint8)
            self.call = lambda: backend.extract(frames)
        self.seconds(1)  # warm-up, as the stage's first batch also pays for it

    def seconds(self, batches: int) -> float:
        import torch

        with torch.inference_mode():
            synchronize()
            start = time.perf_counter()
            for _ in range(batches):
                self.call()
            synchronize()
            return time.perf_counter() - start


def _extract_into(backend, source: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    seconds, _ = timed(backend.extract_videos, source, out, progress=False)
    return seconds


def phase_extract_stage(args: argparse.Namespace) -> dict:
    backend = load_backend(bench_params(args), args.backend)
    seconds = _extract_into(backend, Path(args.source), WORK / "features_out")
    frames = frame_count(Path(args.source))
    return {"videos": len(ShardReader(args.source)), "frames": frames,
            "seconds": round(seconds, 2), "fps": round(frames / seconds, 1),
            "device": backend.numerics.get("device"), "random_weights": backend.random_weights}


def phase_extract_floor(args: argparse.Namespace) -> dict:
    backend = load_backend(bench_params(args), args.backend)
    batches = -(-frame_count(Path(args.source)) // args.batch_size)
    seconds = Floor(backend, args.batch_size).seconds(batches)
    return {"frames": batches * args.batch_size, "seconds": round(seconds, 2),
            "fps": round(batches * args.batch_size / seconds, 1)}


def phase_extract_interleaved(args: argparse.Namespace) -> dict:
    """The extract code and the bare forward pass in turns, on chunks of the videos, in one
    process. On this shared machine the very same forward pass varied from 0.22 to 0.34 s per
    batch within a minute; taking turns every few seconds exposes both sides to the same load,
    so their ratio holds where two separate runs minutes apart did not."""
    backend = load_backend(bench_params(args), args.backend)
    stems = ShardReader(args.source).stems()
    floor = Floor(backend, args.batch_size)
    chunk_dir = WORK / "chunk"
    stage_s = floor_s = 0.0
    frames = 0
    for number, chunk in enumerate(np.array_split(np.arange(len(stems)), args.chunks)):
        copy_videos(Path(args.source), [stems[i] for i in chunk], chunk_dir)
        chunk_frames = frame_count(chunk_dir)
        batches = -(-chunk_frames // args.batch_size)
        if number % 2 == 0:  # alternate who goes first, so a trend in load favours neither
            stage_s += _extract_into(backend, chunk_dir, WORK / "chunk_out")
            floor_s += floor.seconds(batches)
        else:
            floor_s += floor.seconds(batches)
            stage_s += _extract_into(backend, chunk_dir, WORK / "chunk_out")
        frames += chunk_frames
    return {"chunks": args.chunks, "frames": frames, "stage_s": round(stage_s, 2),
            "floor_s": round(floor_s, 2), "stage_fps": round(frames / stage_s, 1),
            "floor_fps": round(frames / floor_s, 1)}


PHASES = {"extract_stage": phase_extract_stage, "extract_floor": phase_extract_floor,
          "extract_interleaved": phase_extract_interleaved}


def bench_extract(args: argparse.Namespace, backend: str, frames: Path) -> dict:
    """Throughput ratio from the interleaved run; peak RSS from one separate run of each side
    (a process of its own, so the peak is its own). The stage reads the decoded `frames` and
    resizes them, as the extract stage does; the floor gets ready tensors."""
    stage = in_child("extract_stage", args, backend, frames)
    floor = in_child("extract_floor", args, backend, frames)
    interleaved = in_child("extract_interleaved", args, backend, frames)
    return {"stage": stage, "floor": floor, "interleaved": interleaved,
            "stage_over_floor": round(interleaved["stage_fps"] / interleaved["floor_fps"], 3)}


def bench_extract_memory(args: argparse.Namespace, backend: str, frames: Path,
                         stage_all: dict) -> dict:
    """Peak RSS of the extract code on a quarter of the videos vs on all of them."""
    quarter = WORK / "frames_quarter"
    stems = ShardReader(frames).stems()
    copy_videos(frames, stems[:max(1, len(stems) // 4)], quarter)
    stage_quarter = in_child("extract_stage", args, backend, quarter)
    return {"backend": backend, "videos_quarter": stage_quarter["videos"],
            "videos_all": stage_all["videos"], "peak_rss_quarter_mb": stage_quarter["peak_rss_mb"],
            "peak_rss_all_mb": stage_all["peak_rss_mb"],
            "all_over_quarter": round(stage_all["peak_rss_mb"] / stage_quarter["peak_rss_mb"], 3)}


def bench_precision(args: argparse.Namespace, backend_name: str, decoded: Path) -> dict:
    """Mixed-precision features vs fp32 on the same real (synthetic-video) frames."""
    params = bench_params(args)
    spec = input_spec(params, backend_name)
    reader = ShardReader(decoded)
    frames = np.concatenate([resize_frames(reader.load(stem), spec) for stem in reader.stems()])
    frames = frames[:args.precision_frames - args.precision_frames % args.batch_size]
    features, speed = {}, {}
    for precision in ("false", "bf16", "fp16"):
        params.backend_section(backend_name)["amp"] = precision
        with warnings.catch_warnings():  # the "amp is slow on a CPU" warning: measured here
            warnings.simplefilter("ignore", UserWarning)
            backend = load_backend(params, backend_name)
        backend.extract(frames[:args.batch_size])  # warm-up
        synchronize()
        start = time.perf_counter()
        features[precision] = np.concatenate([backend.extract(frames[i:i + args.batch_size])
                                              for i in range(0, len(frames), args.batch_size)])
        speed[precision] = round(len(frames) / (time.perf_counter() - start), 1)
    reference = features["false"]
    result = {"backend": backend_name, "frames": len(frames),
              "device": backend.numerics.get("gpu", backend.numerics["device"]),
              "fps_fp32": speed["false"]}
    for precision in ("bf16", "fp16"):
        diff = np.linalg.norm(features[precision] - reference, axis=1)
        relative = diff / np.linalg.norm(reference, axis=1)
        cosine = (features[precision] * reference).sum(1) / (
            np.linalg.norm(features[precision], axis=1) * np.linalg.norm(reference, axis=1))
        result[precision] = {"rel_l2_mean": round(float(relative.mean()), 4),
                             "rel_l2_max": round(float(relative.max()), 4),
                             "cosine_min": round(float(cosine.min()), 5),
                             "fps": speed[precision]}
    return result
