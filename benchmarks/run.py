"""Benchmark vidmem's expensive steps against their floors, side by side in one run.

    python benchmarks/run.py                       # 64 synthetic videos, writes BENCHMARKS.md
    python benchmarks/run.py --videos 2000 --seconds 7 --fps 30   # closer to MediaEval scale
    python benchmarks/run.py --backends efficientnet_lite0 inception_v3  # more backends

Every figure is a ratio of two timings taken in the same run on the same machine, so it holds on
a noisy machine:
- decode: the decode stage's code vs a bare ffmpeg command that outputs the same frames to
  /dev/null (the floor), and vs the naive approach (one ffmpeg seek process per frame);
- extract, per backend (`--backends`; default: params.yaml's `backends`): frames/s through the
  extract code (files on disk, batching, prefetch) vs the bare backbone forward pass on pre-made
  tensors of the same batch size, taking turns on `--chunks` chunks of the videos in one
  process; peak RSS of each side from a separate run;
- extract memory: peak RSS of the extract code on a quarter of the videos vs all of them (bounded
  by the batch, not the data set, means the two are about equal);
- precision: features under mixed precision (bf16, fp16) vs fp32 on the same frames, on the
  device the backend resolves to (CUDA when present): relative L2 error, cosine, frames/s;
- train: seconds per epoch of the reference model (hidden 1024, 3 layers), on the CPU and on
  CUDA when present;
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
import warnings
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


def in_child(phase: str, args: argparse.Namespace, backend: str, source: Path) -> dict:
    """Run one phase in a fresh Python so its peak RSS is its own (read from wait4)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = handle.name
    command = [sys.executable, __file__, "--phase", phase, "--phase-out", out,
               "--videos", str(args.videos), "--batch-size", str(args.batch_size),
               "--chunks", str(args.chunks), "--backend", backend, "--source", str(source)]
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


def decode_config(args):
    """The decode stage's settings for the synthetic videos, all cores."""
    from vidmem.params import DecodeConfig

    return DecodeConfig(n_frames=args.frames, short_side=args.short_side,
                        workers=os.cpu_count() or 1, short_video="repeat", timeout_s=300,
                        ffmpeg=None)


def bench_decode(args, videos: list[Path]) -> dict:
    from vidmem.ffmpeg_bin import ffmpeg_executable
    from vidmem.frames import count_frames, decode_videos, evenly_spaced_indices

    config = decode_config(args)
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


def make_backend(name: str):
    """The backend as params.yaml configures it. A torch backbone whose weights cannot be had
    here (offline) gets random weights instead, for timing only: the speed of a forward pass does
    not depend on the weight values, and `random_weights` says so in every result."""
    from vidmem.backends import create_backend
    from vidmem.errors import VidmemError
    from vidmem.params import load_params

    params = load_params(ROOT / "params.yaml")
    try:
        return create_backend(params, name)
    except VidmemError as exc:
        if params["backend"][name].get("kind") != "torch":
            raise SystemExit(f"benchmark: backend {name} cannot be loaded here: {exc}") from exc
        params["backend"][name]["weights"] = "random"
        return create_backend(params, name)


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():  # GPU work is asynchronous: wait for it before reading a clock
        torch.cuda.synchronize()


class Floor:
    """A backend's bare work on one pre-made batch, repeated: for torch backbones the forward
    pass on a ready tensor (no file reading, conversion or batching); for other backends
    `extract` on ready uint8 frames."""

    def __init__(self, backend, batch_size: int) -> None:
        import torch

        spec = backend.spec
        if hasattr(backend, "_features"):
            x = torch.randn(batch_size, 3, spec.height, spec.width, device=backend.device)
            x = x.contiguous(memory_format=torch.channels_last)
            self.call = lambda: backend._features(x)
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


def frame_count(folder: Path) -> int:
    return sum(np.load(p, mmap_mode="r").shape[0] for p in folder.glob("*.npy"))


def phase_extract_stage(args) -> dict:
    from vidmem.features import extract_features

    backend = make_backend(args.backend)
    out = WORK / "features_out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    seconds, result = timed(extract_features, Path(args.source), out, backend,
                            args.batch_size, None, False)
    frames = frame_count(Path(args.source))
    return {"videos": result.videos, "frames": frames, "seconds": round(seconds, 2),
            "fps": round(frames / seconds, 1), "device": backend.numerics.get("device"),
            "random_weights": backend.random_weights}


def phase_extract_floor(args) -> dict:
    backend = make_backend(args.backend)
    batches = -(-frame_count(Path(args.source)) // args.batch_size)
    seconds = Floor(backend, args.batch_size).seconds(batches)
    return {"frames": batches * args.batch_size, "seconds": round(seconds, 2),
            "fps": round(batches * args.batch_size / seconds, 1)}


def phase_extract_interleaved(args) -> dict:
    """The extract code and the bare forward pass in turns, on chunks of the videos, in one
    process. On this shared machine the very same forward pass varied from 0.22 to 0.34 s per
    batch within a minute; taking turns every few seconds exposes both sides to the same load,
    so their ratio holds where two separate runs minutes apart did not."""
    from vidmem.features import extract_features

    backend = make_backend(args.backend)
    files = sorted(Path(args.source).glob("*.npy"))
    floor = Floor(backend, args.batch_size)
    chunk_dir, out = WORK / "chunk", WORK / "chunk_out"
    stage_s = floor_s = 0.0
    frames = 0
    for number, chunk in enumerate(np.array_split(np.arange(len(files)), args.chunks)):
        for folder in (chunk_dir, out):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        for index in chunk:
            (chunk_dir / files[index].name).symlink_to(files[index].resolve())
        chunk_frames = frame_count(chunk_dir)
        batches = -(-chunk_frames // args.batch_size)

        def stage() -> float:
            seconds, _ = timed(extract_features, chunk_dir, out, backend, args.batch_size,
                               None, False)
            return seconds

        if number % 2 == 0:  # alternate who goes first, so a trend in load favours neither
            stage_s += stage()
            floor_s += floor.seconds(batches)
        else:
            floor_s += floor.seconds(batches)
            stage_s += stage()
        frames += chunk_frames
    return {"chunks": args.chunks, "frames": frames, "stage_s": round(stage_s, 2),
            "floor_s": round(floor_s, 2), "stage_fps": round(frames / stage_s, 1),
            "floor_fps": round(frames / floor_s, 1)}


def bench_extract(args, backend: str, normalized: Path) -> dict:
    """Throughput ratio from the interleaved run; peak RSS from one separate run of each side
    (a process of its own, so the peak is its own)."""
    stage = in_child("extract_stage", args, backend, normalized)
    floor = in_child("extract_floor", args, backend, normalized)
    interleaved = in_child("extract_interleaved", args, backend, normalized)
    return {"stage": stage, "floor": floor, "interleaved": interleaved,
            "stage_over_floor": round(interleaved["stage_fps"] / interleaved["floor_fps"], 3)}


def bench_extract_memory(args, backend: str, normalized: Path, stage_all: dict) -> dict:
    """Peak RSS of the extract code on a quarter of the videos vs on all of them."""
    quarter = WORK / "normalized_quarter"
    shutil.rmtree(quarter, ignore_errors=True)
    quarter.mkdir()
    files = sorted(normalized.glob("*.npy"))
    for path in files[:max(1, len(files) // 4)]:
        (quarter / path.name).symlink_to(path.resolve())
    stage_quarter = in_child("extract_stage", args, backend, quarter)
    return {"backend": backend, "videos_quarter": stage_quarter["videos"],
            "videos_all": stage_all["videos"], "peak_rss_quarter_mb": stage_quarter["peak_rss_mb"],
            "peak_rss_all_mb": stage_all["peak_rss_mb"],
            "all_over_quarter": round(stage_all["peak_rss_mb"] / stage_quarter["peak_rss_mb"], 3)}


def bench_precision(args, backend_name: str, normalized: Path) -> dict:
    """Mixed-precision features vs fp32 on the same real (synthetic-video) frames."""
    from vidmem.backends import create_backend
    from vidmem.params import load_params

    frames = np.concatenate([np.load(p) for p in sorted(normalized.glob("*.npy"))])
    frames = frames[:args.precision_frames - args.precision_frames % args.batch_size]
    params = load_params(ROOT / "params.yaml")
    features, speed = {}, {}
    for precision in ("false", "bf16", "fp16"):
        params["backend"][backend_name]["amp"] = precision
        with warnings.catch_warnings():  # the "amp is slow on a CPU" warning: measured here
            warnings.simplefilter("ignore", UserWarning)
            backend = create_backend(params, backend_name)
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


def train_epoch_seconds(args, device: str) -> float:
    import torch

    from vidmem.model import MemorabilityLSTM

    torch.manual_seed(0)
    model = MemorabilityLSTM(1280, 1024, 3).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(args.train_samples, 8, 1280, device=device)
    y = torch.rand(args.train_samples, device=device)

    def epoch() -> None:
        for batch in range(0, args.train_samples, 1000):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x[batch:batch + 1000]),
                                                y[batch:batch + 1000])
            loss.backward()
            optimizer.step()
        synchronize()

    if device != "cpu":
        epoch()  # warm-up: CUDA context and kernel selection are not part of an epoch
    start = time.perf_counter()
    epoch()
    return time.perf_counter() - start


def bench_train(args) -> dict:
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    result = {"samples": args.train_samples}
    for device in devices:
        seconds = train_epoch_seconds(args, device)
        result[device] = {"seconds_per_epoch": round(seconds, 3),
                          "seconds_per_epoch_6000": round(seconds * 6000 / args.train_samples, 2)}
    return result


def bench_noop_repro() -> dict:
    status = subprocess.run(["dvc", "status", "--quiet"], cwd=ROOT).returncode
    if status != 0:  # timing a real run here would take minutes and change the workspace
        return {"seconds": None, "was_up_to_date": False, "up_to_date_message": False,
                "note": "skipped: the pipeline is not up to date; run `dvc repro` first"}
    seconds, result = timed(subprocess.run, ["dvc", "repro"], cwd=ROOT, capture_output=True,
                            text=True)
    return {"seconds": round(seconds, 2), "was_up_to_date": status == 0,
            "up_to_date_message": "Data and pipelines are up to date." in result.stdout}


def pipeline_front(videos: list[Path], cache: Path | None, out: Path, args,
                   backend_name: str) -> float:
    """decode → normalize → extract through the library, with the per-video cache."""
    from vidmem.features import extract_features, item_files
    from vidmem.frames import decode_videos
    from vidmem.normalize import normalize_videos

    shutil.rmtree(out, ignore_errors=True)
    for sub in ("frames", "normalized", "features"):
        (out / sub).mkdir(parents=True)
    config = decode_config(args)
    start = time.perf_counter()
    decode_videos(videos, out / "frames", config, "skip", cache, False)
    backend = make_backend(backend_name)
    normalize_videos(item_files(out / "frames"), out / "normalized", backend.spec, cache, False)
    extract_features(out / "normalized", out / "features", backend, args.batch_size, cache, False)
    return time.perf_counter() - start


def bench_incremental(args, videos: list[Path], backend: str) -> dict:
    cache = WORK / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    extra = make_videos(args, WORK / "videos", len(videos), max(1, len(videos) // 100))
    full_s = pipeline_front(videos, cache, WORK / "full", args, backend)
    incremental_s = pipeline_front(videos + extra, cache, WORK / "incremental", args, backend)
    pipeline_front(videos + extra, None, WORK / "scratch", args, backend)  # the reference
    from vidmem.features import read_video_features

    scratch, incremental = WORK / "scratch" / "features", WORK / "incremental" / "features"
    stems = sorted(p.name.removesuffix(".npy") for p in scratch.iterdir())
    identical = all(read_video_features(incremental, stem).tobytes()
                    == read_video_features(scratch, stem).tobytes() for stem in stems)
    return {"backend": backend, "videos": len(videos), "added": len(extra),
            "full_s": round(full_s, 2),
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
    m, p = results["extract_memory"], results["precision"]
    extract_rows = [
        f"| extract {name}, batch {results['config']['batch_size']}"
        + (" (random weights: timing only)" if r["stage"]["random_weights"] else "") + " | "
        f"{r['interleaved']['stage_fps']} frames/s, peak RSS {r['stage']['peak_rss_mb']} MB | "
        f"{r['interleaved']['floor_fps']} frames/s bare forward, peak RSS "
        f"{r['floor']['peak_rss_mb']} MB | {r['stage_over_floor']} of floor (taking turns in "
        f"{r['interleaved']['chunks']} chunks) | ≥ 0.8 |" for name, r in e.items()]
    train_rows = [
        f"| train, reference LSTM (1024×3, 1280-d input), {device.upper()} | "
        f"{t[device]['seconds_per_epoch']} s/epoch for {t['samples']} videos | "
        f"≈ {t[device]['seconds_per_epoch_6000']} s/epoch for 6000 | | |"
        for device in ("cpu", "cuda") if device in t]
    precision_rows = [
        f"| {p['backend']} features in {precision} vs fp32 ({p['frames']} frames, "
        f"{p['device']}) | "
        f"relative L2 error {p[precision]['rel_l2_mean']} mean, {p[precision]['rel_l2_max']} max; "
        f"cosine ≥ {p[precision]['cosine_min']} | {p[precision]['fps']} frames/s vs "
        f"{p['fps_fp32']} in fp32 | {round(p[precision]['fps'] / p['fps_fp32'], 2)}× speed | "
        f"documented tolerance |" for precision in ("fp16", "bf16") if p]
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
        *extract_rows,
        f"| extract memory ({m['backend']}): {m['videos_all']} vs {m['videos_quarter']} videos | "
        f"peak RSS "
        f"{m['peak_rss_all_mb']} MB | {m['peak_rss_quarter_mb']} MB | {m['all_over_quarter']}× "
        f"for 4× the videos | bounded by the batch |",
        *precision_rows,
        *train_rows,
        "| no-op `dvc repro` | "
        + (f"{n['seconds']} s (up to date: {n['up_to_date_message']})" if n["seconds"] is not None
           else n["note"]) + " | | | < 3 s |",
        f"| incremental ({inc['backend']}): +{inc['added']} video(s) to {inc['videos']} | "
        f"{inc['incremental_s']} s | "
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
    parser.add_argument("--chunks", type=int, default=10,
                        help="extract stage and floor take turns on this many chunks of videos")
    parser.add_argument("--precision-frames", type=int, default=128,
                        help="frames for the mixed-precision comparison (amp on a CPU is slow)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--phase-out", help=argparse.SUPPRESS)
    parser.add_argument("--backends", nargs="+", metavar="NAME",
                        help="backends from params.yaml to time (default: its `backends` list); "
                             "torch backbones whose weights are not here run with random "
                             "weights, labelled so")
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        result = {"extract_stage": phase_extract_stage, "extract_floor": phase_extract_floor,
                  "extract_interleaved": phase_extract_interleaved}[args.phase](args)
        Path(args.phase_out).write_text(json.dumps(result))
        return

    videos = make_videos(args, WORK / "videos", 0, args.videos)
    results: dict = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                     "argv": " ".join(sys.argv[1:]), "versions": versions(),
                     "config": {k: getattr(args, k) for k in ("videos", "seconds", "fps", "width",
                                                              "height", "frames", "batch_size",
                                                              "precision_frames", "chunks")}}
    print("decode ...", flush=True)
    results["decode"] = bench_decode(args, videos)
    print(results["decode"], "\nextract ...", flush=True)
    from vidmem.backends import input_spec
    from vidmem.features import item_files
    from vidmem.normalize import normalize_videos
    from vidmem.params import load_params

    params = load_params(ROOT / "params.yaml")
    names = args.backends or params["backends"]
    normalized = {name: WORK / f"normalized_{name}" for name in names}
    results["extract"] = {}
    for name in names:
        shutil.rmtree(normalized[name], ignore_errors=True)
        normalized[name].mkdir(parents=True)
        normalize_videos(item_files(WORK / "decode_out"), normalized[name],
                         input_spec(params, name), None, False)
        results["extract"][name] = bench_extract(args, name, normalized[name])
        print(name, results["extract"][name], flush=True)
    first = names[0]
    print("extract memory ...", flush=True)
    results["extract_memory"] = bench_extract_memory(args, first, normalized[first],
                                                     results["extract"][first]["stage"])
    print(results["extract_memory"], "\nprecision ...", flush=True)
    torch_backends = [n for n in names if params["backend"][n].get("kind") == "torch"]
    results["precision"] = bench_precision(args, torch_backends[0], normalized[torch_backends[0]]
                                           ) if torch_backends else None
    print(results["precision"], "\ntrain ...", flush=True)
    results["train"] = bench_train(args)
    print(results["train"], "\nno-op dvc repro ...", flush=True)
    results["noop_repro"] = bench_noop_repro()
    print(results["noop_repro"], "\nincremental ...", flush=True)
    results["incremental"] = bench_incremental(args, videos, first)
    print(results["incremental"], flush=True)
    (ROOT / "benchmarks" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results, ROOT / "BENCHMARKS.md")
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
