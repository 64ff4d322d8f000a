"""Benchmark vidmem's expensive steps against their floors, side by side in one run.

    python benchmarks/run.py                       # 64 synthetic videos, writes BENCHMARKS.md
    python benchmarks/run.py --videos 2000 --seconds 7 --fps 30   # closer to MediaEval scale

Every figure is a ratio of two timings taken in the same run on the same machine, so it holds on
a noisy machine:
- decode: the decode stage's code vs a bare ffmpeg command that outputs the same frames to
  /dev/null (the floor), and vs the naive approach (one ffmpeg seek process per frame);
- extract: frames/s through the extract code (files on disk, batching, prefetch) vs the bare
  backbone forward pass on pre-made tensors of the same batch size; peak RSS of each;
- train: seconds per epoch of the reference model (hidden 1024, 3 layers);
- no-op `dvc repro` in this repo: wall time;
- incremental: decode + normalize + extract after adding 1% more videos, with the per-video
  cache, vs the full run.
Results go to benchmarks/results.json and BENCHMARKS.md (machine, versions, date).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ffmpeg
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "work"


def timed(function, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def in_child(phase: str, args: argparse.Namespace) -> dict:
    """Run one phase in a fresh Python so its peak RSS is its own (read from wait4)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = handle.name
    command = [sys.executable, __file__, "--phase", phase, "--phase-out", out,
               "--videos", str(args.videos), "--batch-size", str(args.batch_size)]
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"phase {phase} failed ({status})")
    result = json.loads(Path(out).read_text())
    os.unlink(out)
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    return result


def make_videos(args: argparse.Namespace, folder: Path, first: int, count: int) -> list[Path]:
    from vidmem.demo import DemoConfig, demo_latents, encode_webm, render_frames
    from vidmem.ffmpeg_bin import ffmpeg_executable

    config = DemoConfig(n_videos=first + count, seconds=args.seconds, fps=args.fps,
                        width=args.width, height=args.height, seed=1)
    latents = demo_latents(config).iloc[first:]
    folder.mkdir(parents=True, exist_ok=True)
    binary = ffmpeg_executable()

    def one(row) -> Path:
        path = folder / row["video"]
        if not path.exists():
            encode_webm(render_frames(row, config), path, config.fps, binary)
        return path

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        return list(pool.map(one, [row for _, row in latents.iterrows()]))


def bench_decode(args, videos: list[Path]) -> dict:
    from vidmem.ffmpeg_bin import ffmpeg_executable
    from vidmem.frames import count_frames, decode_videos, evenly_spaced_indices
    from vidmem.params import DecodeConfig

    config = DecodeConfig(n_frames=args.frames, short_side=args.short_side,
                          workers=os.cpu_count() or 1, short_video="repeat", timeout_s=300,
                          ffmpeg=None)
    binary = ffmpeg_executable()
    totals = {v: count_frames(v, binary, 60) for v in videos}

    def floor_one(video: Path) -> None:
        indices = evenly_spaced_indices(totals[video], args.frames)
        select = "+".join(f"eq(n\\,{i})" for i in sorted(set(indices)))
        scale = (f"scale='if(lte(iw,ih),{args.short_side},-1)':"
                 f"'if(lte(iw,ih),-1,{args.short_side})':flags=area")
        (ffmpeg.input(str(video), threads=1)
         .output("/dev/null", vf=f"select='{select}',{scale}", format="rawvideo",
                 pix_fmt="rgb24", fps_mode="vfr", filter_threads=1)
         .global_args("-loglevel", "error", "-nostdin").overwrite_output()
         .run(cmd=binary, quiet=True))

    def naive_one(video: Path) -> None:
        # One seek-and-decode process per frame, as notebooks often do.
        for index in evenly_spaced_indices(totals[video], args.frames):
            seconds = index / args.fps
            (ffmpeg.input(str(video), ss=seconds, threads=1)
             .output("pipe:", vframes=1, vf=f"scale=-1:{args.short_side}", format="rawvideo",
                     pix_fmt="rgb24")
             .global_args("-loglevel", "error", "-nostdin")
             .run(cmd=binary, capture_stdout=True, quiet=True))

    def parallel(function) -> None:
        with ThreadPoolExecutor(config.workers) as pool:
            list(pool.map(function, videos))

    out = WORK / "decode_out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    stage_s, _ = timed(decode_videos, videos, out, config, "skip", None, False)
    floor_s, _ = timed(parallel, floor_one)
    naive_s, _ = timed(parallel, naive_one)
    return {"videos": len(videos), "stage_s": round(stage_s, 2), "floor_s": round(floor_s, 2),
            "naive_s": round(naive_s, 2), "stage_over_floor": round(stage_s / floor_s, 2),
            "naive_over_stage": round(naive_s / stage_s, 2)}


def efficientnet():
    from vidmem.backends import create_backend
    from vidmem.params import load_params

    return create_backend(load_params(ROOT / "params.yaml"), "efficientnet_lite0")


def phase_extract_stage(args) -> dict:
    from vidmem.features import extract_features

    backend = efficientnet()
    out = WORK / "features_out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    seconds, result = timed(extract_features, WORK / "normalized", out, backend,
                            args.batch_size, None, False)
    frames = sum(np.load(p, mmap_mode="r").shape[0] for p in out.iterdir())
    return {"frames": frames, "seconds": round(seconds, 2), "fps": round(frames / seconds, 1)}


def phase_extract_floor(args) -> dict:
    import torch

    backend = efficientnet()
    frames = sum(np.load(p, mmap_mode="r").shape[0] for p in (WORK / "normalized").glob("*.npy"))
    batches = -(-frames // args.batch_size)
    x = torch.randn(args.batch_size, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        backend._features(x)  # warm-up, as the stage's first batch also pays for it
        start = time.perf_counter()
        for _ in range(batches):
            backend._features(x)
        seconds = time.perf_counter() - start
    return {"frames": batches * args.batch_size, "seconds": round(seconds, 2),
            "fps": round(batches * args.batch_size / seconds, 1)}


def bench_train(args) -> dict:
    import torch

    from vidmem.model import MemorabilityLSTM

    torch.manual_seed(0)
    model = MemorabilityLSTM(1280, 1024, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(args.train_samples, 8, 1280)
    y = torch.rand(args.train_samples)
    start = time.perf_counter()
    for batch in range(0, args.train_samples, 1000):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x[batch:batch + 1000]), y[batch:batch + 1000])
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    return {"samples": args.train_samples, "seconds_per_epoch": round(seconds, 2),
            "seconds_per_epoch_6000": round(seconds * 6000 / args.train_samples, 1),
            "device": "cpu"}


def bench_noop_repro() -> dict:
    status = subprocess.run(["dvc", "status", "--quiet"], cwd=ROOT).returncode
    if status != 0:  # timing a real run here would take minutes and change the workspace
        return {"seconds": None, "was_up_to_date": False, "up_to_date_message": False,
                "note": "skipped: the pipeline is not up to date; run `dvc repro` first"}
    seconds, result = timed(subprocess.run, ["dvc", "repro"], cwd=ROOT, capture_output=True,
                            text=True)
    return {"seconds": round(seconds, 2), "was_up_to_date": status == 0,
            "up_to_date_message": "Data and pipelines are up to date." in result.stdout}


def pipeline_front(videos: list[Path], cache: Path, out: Path, args) -> float:
    """decode → normalize → extract through the library, with the per-video cache."""
    from vidmem.features import extract_features, item_files
    from vidmem.frames import decode_videos
    from vidmem.normalize import normalize_videos
    from vidmem.params import DecodeConfig

    shutil.rmtree(out, ignore_errors=True)
    for sub in ("frames", "normalized", "features"):
        (out / sub).mkdir(parents=True)
    config = DecodeConfig(n_frames=args.frames, short_side=args.short_side,
                          workers=os.cpu_count() or 1, short_video="repeat", timeout_s=300,
                          ffmpeg=None)
    start = time.perf_counter()
    decode_videos(videos, out / "frames", config, "skip", cache, False)
    backend = efficientnet()
    normalize_videos(item_files(out / "frames"), out / "normalized", backend.spec, cache, False)
    extract_features(out / "normalized", out / "features", backend, args.batch_size, cache, False)
    return time.perf_counter() - start


def bench_incremental(args, videos: list[Path]) -> dict:
    cache = WORK / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    extra = make_videos(args, WORK / "videos", len(videos), max(1, len(videos) // 100))
    full_s = pipeline_front(videos, cache, WORK / "full", args)
    incremental_s = pipeline_front(videos + extra, cache, WORK / "incremental", args)
    pipeline_front(videos + extra, None, WORK / "scratch", args)  # reference for identity
    identical = all(
        (WORK / "incremental" / "features" / p.name).read_bytes() == p.read_bytes()
        for p in (WORK / "scratch" / "features").iterdir())
    return {"videos": len(videos), "added": len(extra), "full_s": round(full_s, 2),
            "incremental_s": round(incremental_s, 2),
            "incremental_over_full": round(incremental_s / full_s, 3),
            "features_identical_to_scratch": identical}


def versions() -> dict:
    import torch

    from vidmem.ffmpeg_bin import ffmpeg_executable

    ffmpeg_version = subprocess.run([ffmpeg_executable(), "-version"], capture_output=True,
                                    text=True).stdout.split("\n")[0]
    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "ffmpeg": ffmpeg_version,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def write_markdown(results: dict, path: Path) -> None:
    d, e, t = results["decode"], results["extract"], results["train"]
    n, inc = results["noop_repro"], results["incremental"]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `python benchmarks/run.py {results['argv']}` on {results['date']}.",
        f"Machine: {results['versions']['cores']} cores ({results['versions']['cpu']}), "
        f"GPU: {results['versions']['gpu'] or 'none'}; Python {results['versions']['python']}, "
        f"torch {results['versions']['torch']}, {results['versions']['ffmpeg']}.",
        f"Synthetic videos: {results['config']}.",
        "",
        "| what | measured | floor / reference | ratio | target |",
        "|---|---|---|---|---|",
        f"| decode {d['videos']} videos, {results['config']['frames']} frames each | "
        f"{d['stage_s']} s (stage code) | {d['floor_s']} s (bare ffmpeg → /dev/null) | "
        f"{d['stage_over_floor']}× floor | ≤ 1.5× |",
        f"| decode, naive per-frame seeks | {d['naive_s']} s | {d['stage_s']} s (stage) | "
        f"naive is {d['naive_over_stage']}× slower | stage faster |",
        f"| extract EfficientNet-Lite0, batch {results['config']['batch_size']} | "
        f"{e['stage']['fps']} frames/s, peak RSS {e['stage']['peak_rss_mb']} MB | "
        f"{e['floor']['fps']} frames/s bare forward, peak RSS {e['floor']['peak_rss_mb']} MB | "
        f"{e['stage_over_floor']} of floor | ≥ 0.8 |",
        f"| train, reference LSTM (1024×3), CPU | {t['seconds_per_epoch']} s/epoch for "
        f"{t['samples']} videos | ≈ {t['seconds_per_epoch_6000']} s/epoch for 6000 | | |",
        f"| no-op `dvc repro` | {n['seconds']} s (up to date: {n['up_to_date_message']}) | | | < 3 s |",
        f"| incremental: +{inc['added']} video(s) to {inc['videos']} | {inc['incremental_s']} s | "
        f"{inc['full_s']} s full run | {inc['incremental_over_full']} of full; features "
        f"identical to scratch: {inc['features_identical_to_scratch']} | ≤ 0.05 |",
        "",
        "Raw numbers: `benchmarks/results.json`. Notes and history of optimisations: below.",
        "",
    ]
    notes = path.read_text().split("<!-- notes -->", 1)[1] if path.exists() and \
        "<!-- notes -->" in path.read_text() else "\n"
    path.write_text("\n".join(lines) + "<!-- notes -->" + notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=64, help="synthetic videos (size knob)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--short-side", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train-samples", type=int, default=1000)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--phase-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        result = {"extract_stage": phase_extract_stage, "extract_floor": phase_extract_floor}[
            args.phase](args)
        Path(args.phase_out).write_text(json.dumps(result))
        return

    videos = make_videos(args, WORK / "videos", 0, args.videos)
    results: dict = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                     "argv": " ".join(sys.argv[1:]), "versions": versions(),
                     "config": {k: getattr(args, k) for k in ("videos", "seconds", "fps", "width",
                                                              "height", "frames", "batch_size")}}
    print("decode ...", flush=True)
    results["decode"] = bench_decode(args, videos)
    print(results["decode"], "\nextract ...", flush=True)
    from vidmem.backends import input_spec
    from vidmem.features import item_files
    from vidmem.normalize import normalize_videos
    from vidmem.params import load_params

    shutil.rmtree(WORK / "normalized", ignore_errors=True)
    (WORK / "normalized").mkdir()
    normalize_videos(item_files(WORK / "decode_out"), WORK / "normalized",
                     input_spec(load_params(ROOT / "params.yaml"), "efficientnet_lite0"), None,
                     False)
    stage, floor = in_child("extract_stage", args), in_child("extract_floor", args)
    results["extract"] = {"stage": stage, "floor": floor,
                          "stage_over_floor": round(stage["fps"] / floor["fps"], 3)}
    print(results["extract"], "\ntrain ...", flush=True)
    results["train"] = bench_train(args)
    print(results["train"], "\nno-op dvc repro ...", flush=True)
    results["noop_repro"] = bench_noop_repro()
    print(results["noop_repro"], "\nincremental ...", flush=True)
    results["incremental"] = bench_incremental(args, videos)
    print(results["incremental"], flush=True)
    (ROOT / "benchmarks" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results, ROOT / "BENCHMARKS.md")
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
