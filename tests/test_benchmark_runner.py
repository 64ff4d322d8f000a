"""benchmarks/run.py: one table of benchmarks, and a default that works with params.yaml."""

from __future__ import annotations

import mmap
import os
import sys
import threading
import time

import numpy as np
import pytest

from vidmem.core.params import Params, load_params

from conftest import REPO, processes, with_documented_backends

sys.path.insert(0, str(REPO / "benchmarks"))
runner = pytest.importorskip("run", reason="benchmarks/run.py imports its bench package")


def test_every_benchmark_is_in_the_table_and_needs_only_known_ones():
    assert list(runner.BENCHMARK_TABLE) == runner.BENCHMARKS
    for needs, function in runner.BENCHMARK_TABLE.values():
        assert set(needs) <= set(runner.BENCHMARKS) and callable(function)


def test_the_default_backends_are_the_listed_frame_backends():
    """params.yaml lists captions, which has no frames/s to time: the default used to stop at
    extract with "backend captions (kind: captions) needs a captions file"."""
    params = load_params(REPO / "params.yaml")
    assert "captions" in params["backends"]
    assert runner.frame_backends(Params(params)) == ["efficientnet_lite0"]
    params["backends"] = ["captions", "inception_v3", "efficientnet_lite0"]
    with_documented_backends(params)
    assert runner.frame_backends(Params(params)) == ["inception_v3", "efficientnet_lite0"]


# Every benchmark at the smallest sizes that still exercise its code: a refactor that breaks one
# fails here, not in the next person's measurement run.
SMOKE_ARGS = ["--videos", "3", "--seconds", "1", "--fps", "8", "--width", "160", "--height", "96",
              "--frames", "2", "--batch-size", "4", "--chunks", "1", "--precision-frames", "4",
              "--train-samples", "4", "--train-hidden", "8", "--footprint-videos", "8",
              "--footprint-seconds", "1", "--footprint-before", "none", "--footprint-formats",
              "--layout-videos", "20", "--scaleout-videos", "3", "--long-clips", "1",
              "--long-seconds", "2", "--memory-sizes", "8", "16", "--memory-throughput-n", "8",
              "--memory-hidden", "8"]


def test_every_benchmark_runs_on_tiny_sizes(tmp_path):
    import json
    import os
    import subprocess

    env = {**os.environ, "VIDMEM_BENCH_WORK": str(tmp_path / "work")}
    run = subprocess.run([sys.executable, str(REPO / "benchmarks/run.py"), *SMOKE_ARGS,
                          "--results-dir", str(tmp_path)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads((tmp_path / "benchmarks/results.json").read_text())
    for key in ("decode", "decode_long", "extract", "extract_memory", "precision", "train",
                "noop_repro", "incremental", "memory", "footprint", "dvc_layout", "scaleout"):
        assert results.get(key), key
    assert results["incremental"]["features_identical_to_scratch"] is True
    assert results["scaleout"]["ray_identical_to_local"] is True
    table = (tmp_path / "BENCHMARKS.md").read_text()
    assert "| extract efficientnet_lite0, batch 4" in table and "| decode 3 videos" in table


def test_the_gpu_benchmark_runs_every_part_at_toy_sizes_on_a_cpu(tmp_path):
    """benchmarks/gpu.py is run by hand on a lent GPU box: here each part runs at toy sizes so a
    refactor cannot break it unseen, and `record` turns its files into BENCHMARKS.md rows."""
    import json
    import subprocess

    run = subprocess.run([sys.executable, str(REPO / "benchmarks/gpu.py"), "extract", "numerics",
                          "train", "decode", "e2e", "profile", "--small", "--out", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    parts = {path.stem: json.loads(path.read_text()) for path in tmp_path.glob("gpu_*.json")}
    assert set(parts) == {f"gpu_{p}"
                          for p in ("extract", "numerics", "train", "decode", "e2e", "profile")}
    profiled = parts["gpu_profile"]["result"]
    assert profiled["device"] is None  # no GPU here: no kernel time to report
    # The thread that drives the network is the one profiled: its convolutions are there.
    assert any("conv2d" in f["function"] for f in profiled["driving_thread_top_own_time"])
    assert 0 < profiled["driving_thread_in_chunks_s"] <= profiled["profiled_s"]
    assert all(row["ratio"] > 0 and row["host_ceiling_fps"] > 0
               for row in parts["gpu_extract"]["result"])
    assert parts["gpu_train"]["result"]["two_runs_bitwise_equal"] is True
    assert parts["gpu_train"]["result"]["bare_tf32_s_per_epoch"] > 0
    e2e = parts["gpu_e2e"]["result"]
    assert set(e2e["steps_s"]) == {"decode", "normalize", "extract", "concat", "train"}
    assert set(e2e["floors_s"]) == {"decode", "extract", "train"}
    assert all(seconds > 0 for seconds in e2e["floors_s"].values())
    assert e2e["normalize_stored_as_decoded"] is True  # 16 names, 4 distinct clips: still linked
    from bench.report import gpu_rows

    rows = gpu_rows({part.removeprefix("gpu_"): value for part, value in parts.items()})
    assert any(row.startswith("| GPU train") and "bare loop (TF32 on: " in row for row in rows)
    profile_rows = [row for row in rows if row.startswith("| GPU extract profiled, fp32, batch")]
    assert len(profile_rows) == 1
    # What a fork costs where extract forks its loaders, and where it could fork them instead.
    fork = profiled["fork"]
    assert set(fork) == {"backend_run_on_its_device", "backend_built_on_cpu", "torch_imported"}
    assert all(state["fork_ms"] > 0 for state in fork.values())
    # The backend's weights and timm add to what torch alone holds.
    assert fork["backend_built_on_cpu"]["rss_anon_mib"] > fork["torch_imported"]["rss_anon_mib"]
    assert (f"; one fork where extract forks its loaders (model on its device, after a run) "
            f"{fork['backend_run_on_its_device']['fork_ms']} ms") in profile_rows[0]
    del profiled["fork"]  # a row from before forks were timed
    assert "one fork" not in gpu_rows({"profile": parts["gpu_profile"]})[0]
    # On a CPU the loaders are threads: no processes to start. Rows of runs from before
    # loader start-up was timed say nothing of it.
    assert all(row["loader_start_s"] == 0 for row in parts["gpu_extract"]["result"])
    extract_rows = [row for row in rows if row.startswith("| GPU extract efficientnet")]
    assert extract_rows and all("loader processes started in 0 s" in row for row in extract_rows)
    for row in parts["gpu_extract"]["result"]:
        del row["loader_start_s"]
    older = gpu_rows({"extract": parts["gpu_extract"]})
    assert older and not any("loader processes started" in row for row in older)
    assert any(row.startswith("| GPU box end to end: 16 clips") for row in rows)
    # Every row says where and when its part ran (rows of several runs may share the table).
    days = {part["date"][:10] for part in parts.values()}
    assert all(f"cpu, {os.cpu_count()} cores, " in row and any(day in row for day in days)
               for row in rows), rows


def test_the_gpu_profile_counts_time_the_device_was_busy_once_where_work_overlaps():
    """Kernels and copies on two streams overlap: the busy time is their union, never the sum,
    so a busy share cannot pass 100% of the wall."""
    gpu = pytest.importorskip("gpu", reason="benchmarks/gpu.py")
    # microseconds: [0, 10] and [5, 20] overlap, [30, 40] stands apart, [32, 35] lies inside
    assert gpu.busy_seconds([(30, 40), (0, 10), (5, 20), (32, 35)]) == pytest.approx(30e-6)
    assert gpu.busy_seconds([]) == 0.0


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _on_the_driving_thread() -> None:
    _spin(0.01)


def _on_a_writer_thread() -> None:
    _spin(0.01)


def _repeat(call, times: int) -> None:
    for _ in range(times):
        call()


def test_the_gpu_profile_counts_the_driving_threads_calls_alone():
    """Extract's writer threads save features beside the thread that drives the GPU: the
    profile of the driving thread must hold its calls alone, with their times. (cProfile, on
    Python 3.12 and later, put every thread's calls in one table and one call stack.)"""
    gpu = pytest.importorskip("gpu", reason="benchmarks/gpu.py")
    profile = gpu.ThreadProfile()
    with profile:
        writer = threading.Thread(target=_repeat, args=(_on_a_writer_thread, 60))
        writer.start()
        driver = threading.Thread(target=profile.wrap(_repeat), args=(_on_the_driving_thread, 30))
        driver.start()
        driver.join()
        writer.join()
    functions = {row["function"].rsplit("(", 1)[-1]: row for row in profile.top_own_time(50)}
    assert "_on_a_writer_thread)" not in functions, functions
    driving = functions["_on_the_driving_thread)"]
    assert driving["calls"] == 30
    assert 0.3 <= driving["cumulative_s"] <= profile.seconds + 0.0005  # rounded to 1 ms
    assert functions["_spin)"]["calls"] == 30


def _report_whether_profiled(connection) -> None:
    import yappi

    connection.send(yappi.is_running())


def test_a_process_forked_while_the_gpu_profile_runs_is_not_profiled():
    """Extract's loader processes are forked while the profile runs: profiling would go on in
    them (their loads several times slower in Python code) and be counted nowhere."""
    import multiprocessing

    gpu = pytest.importorskip("gpu", reason="benchmarks/gpu.py")
    fork = multiprocessing.get_context("fork")
    parent_end, child_end = fork.Pipe()
    with gpu.ThreadProfile():
        import yappi

        assert yappi.is_running()
        child = fork.Process(target=_report_whether_profiled, args=(child_end,))
        child.start()
        profiled_in_child = parent_end.recv()
        child.join()
    assert profiled_in_child is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/status: Linux")
def test_the_gpu_fork_cost_reads_the_memory_a_fork_copies_and_leaves_no_child():
    """A fork copies the page tables of the parent's anonymous memory: the probe reports that
    memory as it grows, and reaps every child it forked."""
    gpu = pytest.importorskip("gpu", reason="benchmarks/gpu.py")
    zombies_before = _zombie_children()
    before = gpu.fork_cost(times=3)
    # New anonymous pages straight from the kernel, touched so they are resident: an array
    # from malloc may reuse memory an earlier test freed and the allocator kept (CI once saw
    # 0 MiB of growth that way), which a fork copies all the same.
    held = mmap.mmap(-1, 256 * 2**20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for page in range(0, len(held), mmap.PAGESIZE):
        held[page] = 1
    after = gpu.fork_cost(times=3)
    held.close()
    assert after["rss_anon_mib"] - before["rss_anon_mib"] >= 250
    assert before["fork_ms"] > 0 and after["fork_ms"] > 0
    assert _zombie_children() == zombies_before  # every child the probe forked was reaped


def _zombie_children() -> set[int]:
    """This process's children that have exited and not been reaped."""
    return {pid for pid, (state, ppid, *_) in processes().items()
            if state == "Z" and int(ppid) == os.getpid()}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="loader processes: Linux")
def test_the_gpu_extract_rows_time_the_start_of_loader_processes(tmp_path):
    """On a GPU, extract forks its loader processes from the process that holds the model and
    waits for them: the extract rows say how long that took, counted once per start of
    loader processes (threads start nothing), and the loaders' own code is put back after."""
    gpu = pytest.importorskip("gpu", reason="benchmarks/gpu.py")
    from vidmem.backends.base import VideoLoader, VideoLoaders
    from vidmem.store.shards import ShardReader, write_arrays
    from vidmem.video.geometry import InputSpec

    spec = InputSpec.from_params(gpu.SPEC, "input")
    rng = np.random.default_rng(0)
    write_arrays(tmp_path / "frames", [
        (f"video{i}", rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)) for i in range(4)])
    reader = ShardReader(tmp_path / "frames")

    def load_every_video(processes: bool) -> list[str]:
        loaders = VideoLoaders(VideoLoader(reader, spec), 2, (2, 224, 224, 3),
                               processes=processes)
        try:
            return [stem for stem, _ in loaders.in_order(reader.stems())]
        finally:
            loaders.close()

    start_loaders = VideoLoaders._start_loaders
    with gpu.loader_start_timer() as starts:
        assert load_every_video(processes=True) == reader.stems()
        assert load_every_video(processes=False) == reader.stems()
    assert len(starts) == 1 and 0 < starts[0] < 60
    assert VideoLoaders._start_loaders is start_loaders


def test_tf32_is_on_only_inside_its_measurement_and_the_flags_are_restored_after_an_error():
    """The GPU benchmark times the LSTM with TF32 on beside vidmem's TF32 off: the flags must
    come back as they were (else the parts after it would measure TF32 as if it were off)."""
    import torch

    gpu = pytest.importorskip("gpu", reason="benchmarks/gpu.py")
    flags = torch.backends.cuda.matmul, torch.backends.cudnn
    before = [flag.allow_tf32 for flag in flags]
    try:
        for start in (False, True):
            for flag in flags:
                flag.allow_tf32 = start
            with pytest.raises(KeyError), gpu.tf32_on():
                assert all(flag.allow_tf32 for flag in flags)
                raise KeyError("a part that fails inside")
            assert [flag.allow_tf32 for flag in flags] == [start, start]
    finally:
        for flag, value in zip(flags, before, strict=True):
            flag.allow_tf32 = value


def test_the_device_script_unpacks_the_carry_and_runs_gpu_py_with_it(tmp_path):
    """benchmarks/gpu_device.sh on a copy of the repository with a .carry/ as
    benchmarks/gpu_carry.sh packs it (here: one module, and an ffmpeg that wraps this
    machine's): both are unpacked, the carried ffmpeg is the one the benchmark runs, and the
    part's file and the log land in $OUT."""
    import json
    import lzma
    import shutil
    import subprocess
    import tarfile

    from vidmem.video.ffmpeg_bin import ffmpeg_executable

    repo = tmp_path / "repo"
    shutil.copytree(REPO / "benchmarks", repo / "benchmarks",
                    ignore=shutil.ignore_patterns("work", "__pycache__"))
    shutil.copytree(REPO / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "site"
    (site / "carried_marker").mkdir(parents=True)
    (site / "carried_marker" / "__init__.py").write_text("CARRIED = True\n")
    (repo / ".carry").mkdir()
    machine_code = [{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2, "preset": 9}]  # as packed
    with lzma.open(repo / ".carry" / "site.tar.xz", "wb", filters=machine_code) as packed, \
            tarfile.open(fileobj=packed, mode="w") as tar:
        tar.add(site, arcname=".")
    # The carried ffmpeg names itself apart from this machine's, and runs this machine's.
    wrapper = (f'#!/bin/sh\n[ "$1" = -version ] && echo "ffmpeg version carried" && exit 0\n'
               f'exec {ffmpeg_executable()} "$@"\n')
    with lzma.open(repo / ".carry" / "ffmpeg.xz", "wb", filters=machine_code) as packed:
        packed.write(wrapper.encode())
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "TMPDIR": str(tmp_path)}
    run = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_device.sh"), "train", "--small"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    part = json.loads((out / "gpu_train.json").read_text())
    assert part["result"]["two_runs_bitwise_equal"] is True
    assert part["ffmpeg"] == "ffmpeg version carried"
    assert "train" in (out / "log.txt").read_text()
    unpacked = tmp_path / "vidmem_site"
    assert (unpacked / "carried_marker" / "__init__.py").exists()
    assert os.access(unpacked / "bin" / "ffmpeg", os.X_OK)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM: Linux")
def test_a_phases_peak_rss_is_its_own_not_the_size_of_the_process_that_spawned_it(tmp_path):
    """wait4's ru_maxrss of a child starts at its parent's high-water mark (Linux carries it
    across exec), which made every run.py phase read at least run.py's size. The phase's own
    figure does not, and a growth is read from a high-water mark reset before it."""
    import subprocess

    import numpy as np

    held = np.ones(400 * 2**20 // 8)  # 400 MB resident in this (the spawning) process
    child = ("import numpy as np; from bench.harness import own_peak_rss_mb, own_high_water_kb, "
             "reset_own_high_water; a = np.ones(300 * 2**20 // 8); del a; peak = own_peak_rss_mb(); "
             "reset_own_high_water(); before = own_high_water_kb(); "
             "b = np.ones(100 * 2**20 // 8); "
             "print(peak, (own_high_water_kb() - before) / 1024)")
    process = subprocess.Popen([sys.executable, "-c", child], cwd=REPO / "benchmarks",
                               stdout=subprocess.PIPE, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    assert status == 0 and held.sum() > 0
    own_peak, growth = map(float, out.split())
    assert usage.ru_maxrss / 1024 >= 400  # what the harness read before
    assert 300 <= own_peak < 390  # the child's 300 MB, not the parent's 400
    assert 95 <= growth <= 110  # the 100 MB after the reset, not the 300 before it


def test_the_end_to_end_row_names_the_step_furthest_above_its_floor():
    from bench.report import e2e_verdict

    run = {"wall_s": 120.0, "goal_s": 90, "decode_floor_s": 50.0,
           "steps_s": {"decode": 60.0, "normalize": 4.0, "extract": 12.0, "concat": 1.0,
                       "train": 43.0},
           "floors_s": {"decode": 50.0, "extract": 7.0, "train": 18.0}}
    verdict = e2e_verdict(run)
    assert verdict.startswith("train holds it back most: 43.0 s against a floor of 18.0 s")
    assert "(sum 75.0 s)" in verdict
    # An earlier run's file, with decode's floor only: a step without a floor counts whole.
    earlier = {**run, "steps_s": {**run["steps_s"], "normalize": 78.0}}
    del earlier["floors_s"]
    assert e2e_verdict(earlier).startswith("normalize holds it back most: 78.0 s (no floor")
    assert e2e_verdict({**run, "wall_s": 89.0}) == "goal met"


def test_the_numerics_rows_say_whether_extract_ran_after_cuda_refused_a_page_lock():
    """The GPU numerics part checks extract's fallback where CUDA refuses to page-lock memory;
    its row says what happened, and a run from before the check (no such key) shows no row."""
    from bench.report import gpu_rows

    errors = {"rel_l2_mean": 0.001, "rel_l2_max": 0.002}
    result = {"frames": 10, **{name: errors for name in ("fp32", "fp32_tf32", "fp16", "bf16")}}
    part = {"device": "NVIDIA H100 80GB HBM3", "cores": 16, "date": "2026-12-07T12:00:00Z"}
    earlier = gpu_rows({"numerics": {"result": result, **part}})
    assert len(earlier) == 1 and earlier[0].startswith("| GPU features vs CPU features")
    failed = ("cudaError 712: part or all of the requested memory range is already mapped; "
              "extract failed: CUDA error: part or all of the requested memory range is ...")
    rows = gpu_rows({"numerics": {"result": {**result, "after_refused_page_lock": failed},
                                  **part}})
    assert rows[0] == earlier[0]
    assert rows[1] == ("| GPU extract after CUDA refused to page-lock its input (NVIDIA H100 "
                       f"80GB HBM3, 16 cores, 2026-12-07) | {failed} | | | extract ran |")


def test_the_gpu_fallback_check_reports_the_refusal_and_whether_extract_ran(monkeypatch):
    """`after_refused_page_lock` (the numerics part, on a GPU) locks memory twice and runs the
    network: it reports CUDA's refusal as the stage's line names it. Here the backend's own
    page-locking runs against a stand-in for CUDA's runtime, and the network on the CPU."""
    from types import SimpleNamespace

    import torch

    from vidmem.backends.torch_backbones import TorchBackbone

    from helpers import CudaRuntime

    gpu = pytest.importorskip("gpu", reason="benchmarks/gpu.py")
    backend = gpu.torch_backend("false", 2, "random", "cpu")
    frames = np.zeros((2, 224, 224, 3), np.uint8)
    assert gpu.after_refused_page_lock(backend, frames) == "not refused; extract ran"
    runtime = CudaRuntime()
    monkeypatch.setattr(torch.cuda, "cudart", lambda: runtime)
    monkeypatch.setattr(torch.cuda, "set_device", runtime.set_device)
    on_gpu = SimpleNamespace(device=torch.device("cuda", 0))
    monkeypatch.setattr(backend, "pin_host_memory",
                        lambda memory: TorchBackbone.pin_host_memory(on_gpu, memory))
    assert gpu.after_refused_page_lock(backend, frames) == (
        "cudaError 712: part or all of the requested memory range is already mapped; "
        "extract ran")
    assert runtime.locked == {}  # the first lock undone


def test_a_failing_gpu_part_leaves_its_traceback_and_the_other_parts_run(tmp_path, monkeypatch,
                                                                             capsys):
    """On a lent GPU box one broken part must not cost the others their measurement: it writes
    its traceback where its rows would be, the next part still runs, and `record` keeps the
    earlier rows of the failed part."""
    import json

    gpu = pytest.importorskip("gpu", reason="benchmarks/gpu.py")

    def broken(work, small):
        raise RuntimeError("the device batch path broke")

    def slow(work, small):
        time.sleep(0.3)
        return {"x": 1}

    monkeypatch.setattr(gpu, "PARTS", {"extract": broken, "train": slow})
    # The slow part first: a timer started once for the whole run would give the failed part
    # the slow one's 0.3 s too.
    assert gpu.run_parts(["train", "extract"], tmp_path, small=True) == ["extract"]
    extract = json.loads((tmp_path / "gpu_extract.json").read_text())
    assert "the device batch path broke" in extract["error"] and "result" not in extract
    trained = json.loads((tmp_path / "gpu_train.json").read_text())
    assert trained["result"] == {"x": 1}
    # Each part's wall time comes back, a failed one's too: the next call is planned from them.
    assert 0.3 <= trained["part_s"] < 30 and 0 <= extract["part_s"] < 0.3

    import bench.harness

    (tmp_path / "benchmarks").mkdir()
    kept = {"result": [{"kept": True}], "device": "NVIDIA H200", "cores": 16,
            "date": "2026-12-04T16:44:41Z"}
    (tmp_path / "benchmarks" / "results.json").write_text(json.dumps({"gpu": {"extract": kept}}))
    monkeypatch.setattr(bench.harness, "ROOT", tmp_path)
    written = []
    monkeypatch.setattr("bench.report.write_markdown", lambda results, path: written.append(path))
    capsys.readouterr()
    gpu.record([tmp_path])
    results = json.loads((tmp_path / "benchmarks" / "results.json").read_text())
    assert results["gpu"]["extract"] == kept
    assert results["gpu"]["train"]["result"] == {"x": 1}
    assert written == [tmp_path / "BENCHMARKS.md"]
    # The table now mixes two runs, and record says which rows come from which.
    from bench.report import measured_on

    train = measured_on(results["gpu"]["train"])
    assert train.startswith(f"cpu, {os.cpu_count()} cores, 20")  # this run: no GPU here
    said = capsys.readouterr().err
    assert "more than one run" in said and "NVIDIA H200, 16 cores, 2026-12-04: extract" in said
    assert f"{train}: train" in said
