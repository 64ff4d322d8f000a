"""Timing helpers shared by the benchmarks: wall time, peak RSS of a child process, GPU sync,
and the params every benchmark builds its work from."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from vidmem.core.params import Params

ROOT = Path(__file__).resolve().parents[2]
# Scratch space of every benchmark (VIDMEM_BENCH_WORK moves it, e.g. for the smoke test).
WORK = Path(os.environ.get("VIDMEM_BENCH_WORK", ROOT / "benchmarks" / "work"))
RUN = ROOT / "benchmarks" / "run.py"


def timed(function: Callable, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():  # GPU work is asynchronous: wait for it before reading a clock
        torch.cuda.synchronize()


def in_child(phase: str, args: argparse.Namespace, backend: str, source: Path,
             extra: tuple[str, ...] = ()) -> dict:
    """Run one phase of run.py in a fresh Python so its peak RSS is its own (read from wait4)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = handle.name
    command = [sys.executable, str(RUN), "--phase", phase, "--phase-out", out,
               "--videos", str(args.videos), "--batch-size", str(args.batch_size),
               "--chunks", str(args.chunks), "--backend", backend, "--source", str(source),
               *extra]
    process = subprocess.Popen(command)
    if process.wait() != 0:
        raise SystemExit(f"phase {phase} failed ({process.returncode})")
    result = json.loads(Path(out).read_text())
    os.unlink(out)
    result["peak_rss_mb"] = result.pop("own_peak_rss_mb")
    return result


def own_peak_rss_mb() -> float:
    """Peak RSS of this process (VmHWM, the high-water mark of its own memory, which exec
    starts afresh), or of a child it waited for if larger. Not wait4's ru_maxrss of a child:
    Linux carries the spawning process's high-water mark across exec, so every phase of run.py
    read at least run.py's own size (680 MB with torch loaded; 1,349 MB after a repro part)."""
    return round(max(own_high_water_kb(),
                     resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024, 1)


def reset_own_high_water() -> None:
    """Start this process's VmHWM afresh from its present size (Linux ≥ 4.0; elsewhere a
    no-op, and a later growth reads from the earlier peak)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def own_high_water_kb() -> int:
    """The high-water mark of this process's own resident memory, in KiB (VmHWM; where there is
    no /proc, ru_maxrss, which may start at the spawning process's size)."""
    high_water = own_status_kb("VmHWM")
    return high_water if high_water is not None else resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss


def own_status_kb(field: str) -> int | None:
    """A memory field of this process's /proc/self/status (VmHWM, RssAnon, ...), in KiB; None
    where there is no /proc or no such field."""
    try:
        return int(Path("/proc/self/status").read_text().split(f"\n{field}:")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return None


def bench_params(args: argparse.Namespace, cache_dir: Path | None = None) -> Params:
    """params.yaml with the benchmark's decode settings (all cores), batch size and cache,
    parsed as a stage parses it."""
    from vidmem.core.params import Params, load_params

    params = load_params(ROOT / "params.yaml")
    params["decode"].update(n_frames=args.frames, short_side=args.short_side,
                            workers=os.cpu_count() or 1, short_video="repeat", timeout_s=300,
                            ffmpeg=None)
    params["data"]["on_bad_input"] = "skip"
    params["cache"]["dir"] = None if cache_dir is None else str(cache_dir)
    for section in params["backend"].values():
        section["frames_per_batch"] = args.batch_size
    return Params(params)


def load_backend(params: Params, name: str):
    """The backend as `params` configures it. A torch backbone whose weights cannot be had here
    (offline) gets random weights instead, and `params` says so from then on: for timing only,
    since the speed of a forward pass does not depend on the weight values, and
    `random_weights` says so in every result."""
    from vidmem.backends import create_backend
    from vidmem.core.errors import VidmemError

    try:
        return create_backend(params, name)
    except VidmemError as exc:
        section = params.backend_section(name)
        if section.get("kind") != "torch":
            raise SystemExit(f"benchmark: backend {name} cannot be loaded here: {exc}") from exc
        section["weights"] = "random"  # the section every later reader of `params` gets
        return create_backend(params, name)


def copy_videos(source: Path, stems: list[str], dest: Path) -> None:
    """A stage output of just `stems` from the stage output `source`, in its format."""
    from vidmem.store.framestore import SUFFIXES, FrameFormat
    from vidmem.store.shards import ShardReader, write_arrays

    reader = ShardReader(source)
    kind = {suffix: kind for kind, suffix in SUFFIXES.items()}[reader.suffix]
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    write_arrays(dest, ((stem, reader.load(stem)) for stem in stems),
                 FrameFormat(kind) if kind != "npy" else None)


def frame_count(folder: Path) -> int:
    """Frames in a folder of per-video frames files (any stored format)."""
    from vidmem.store.shards import ShardReader

    reader = ShardReader(folder)
    return sum(len(reader.load(stem)) for stem in reader.stems())


def ffmpeg_version() -> str:
    """The first line of `ffmpeg -version` of the binary the stages run (a GPU box runs the
    one benchmarks/gpu_carry.sh packs, not requirements.txt's)."""
    from vidmem.video.ffmpeg_bin import ffmpeg_executable

    return subprocess.run([ffmpeg_executable(), "-version"], capture_output=True,
                          text=True).stdout.split("\n")[0]


def versions() -> dict:
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "ffmpeg": ffmpeg_version(),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
