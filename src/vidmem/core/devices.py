"""Where PyTorch work runs, and in which precision: one rule for the extract and train stages."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from vidmem.core.errors import VidmemError

PRECISIONS = ("false", "bf16", "fp16")
# TF32 (10-bit mantissa products in "fp32" matrix and convolution kernels on Ampere and newer)
# stays off: fp32 features and training on a GPU are then real fp32, within rounding of the
# CPU's, and speed comes from `amp` where it is asked for. PyTorch's own default turns it on
# for cuDNN convolutions only, which made GPU features differ from the CPU's by relative L2
# 0.0032 (docs/gpu.md has the measured differences).
TF32 = False


def use_cuda_numerics() -> None:
    """Set the process-wide CUDA math settings vidmem's results are defined with (TF32)."""
    torch.backends.cuda.matmul.allow_tf32 = TF32
    torch.backends.cudnn.allow_tf32 = TF32


def host_threads(limit: int = 16) -> int:
    """Threads for a stage's per-video host work (reading, checking, resizing, saving): one per
    core this process may use, at most `limit`."""
    return max(1, min(limit, len(os.sched_getaffinity(0))))


def resolve_device(requested: str = "auto") -> torch.device:
    """`auto` → CUDA when PyTorch sees a GPU, else the CPU; asking for CUDA without one is an error
    (not a silent fallback), since timings and results would not be what was asked for."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise VidmemError(f"device {requested!r} asked for, but PyTorch sees no CUDA GPU; "
                          "use device: auto to fall back to the CPU")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise VidmemError(f"unknown device {requested!r}; use auto, cpu or cuda") from exc
    if device.type == "cuda":
        use_cuda_numerics()
    return device


def cuda_call_on_own_thread(device: torch.device, call: Callable[..., Any], *args: Any) -> int:
    """Run one call of CUDA's runtime (`torch.cuda.cudart()`'s bindings) on `device`, on a
    thread of its own, and return its cudaError code (0: success).

    Why a thread of its own: the runtime keeps the last error per host thread, and PyTorch's
    check after every kernel launch reads it. A call that CUDA refuses (page-locking memory it
    will not lock) made on the thread that drives the network would fail that thread's next
    kernel with the refusal's error, though nothing is wrong; on a thread of its own the code
    comes back here and the error ends with the thread."""
    index = device.index if device.index is not None else torch.cuda.current_device()

    def on_device() -> int:
        torch.cuda.set_device(index)  # a new thread starts on device 0
        return int(call(*args))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidmem-cuda-call") as thread:
        return thread.submit(on_device).result()


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision on `device` (`bf16`/`fp16`), or nothing for `false`. Works on the CPU too,
    so the tolerance BENCHMARKS.md reports can be measured wherever the benchmark runs."""
    if precision == "false":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def numerics(device: torch.device, precision: str) -> dict[str, Any]:
    """What decides the exact bits of a result besides the inputs and config: the kind of device
    (and GPU model), the precision, and on a CPU the number of threads (oneDNN splits some
    convolutions differently: EfficientNet-Lite0 on a batch of 8 differs by up to 9e-6 between 1
    and 2 threads). Part of cache keys, so features computed on a CPU are not reused by a GPU
    run (or fp16 ones by an fp32 run), and written beside the results."""
    facts: dict[str, Any] = {"device": device.type, "precision": precision}
    if device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(device)
        facts["tf32"] = TF32
    else:
        facts["threads"] = torch.get_num_threads()
    return facts
