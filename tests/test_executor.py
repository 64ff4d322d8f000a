"""The Ray executor (VIDMEM_EXECUTOR=ray) against the local one: same bytes, and faults survived.

Ray here is the embedded local Ray a user gets with no cluster (2 CPUs on CI). Workers are
killed for real (SIGKILL to the process Ray runs the task or actor in), and so is the driver.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from vidmem.app.pipeline import features_for_videos
from vidmem.backends import decode_config
from vidmem.core.errors import ParamsError
from vidmem.core.params import Params
from vidmem.data.demo import DemoConfig, make_demo_dataset
from vidmem.store.executor import EXECUTOR_ENV, get_executor
from vidmem.store.shards import ShardReader
from vidmem.video.frames import decode_step

from conftest import REPO, pinned_or_skip, processes, sh, status_stages, tiny_project, use_backends

ray = pinned_or_skip("ray")
BACKEND = "efficientnet_lite0"


def tree_digests(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def demo_params() -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["backends"] = [BACKEND]
    params["backend"][BACKEND]["frames_per_batch"] = 8
    params["decode"]["n_frames"] = 4
    return params


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo") / "videos"
    make_demo_dataset(folder, folder.parent / "gt.csv", DemoConfig(n_videos=12, seconds=1.0))
    return folder


@pytest.fixture(scope="module")
def local_features(videos, tmp_path_factory) -> dict[str, str]:
    """Every file decode → extract writes, run by the local executor."""
    work = tmp_path_factory.mktemp("local")
    params = {**demo_params(), "cache": {"dir": str(work / "cache")}}
    features_for_videos(videos, work / "out", Params(params), BACKEND, progress=False)
    return tree_digests(work / "out")


@pytest.fixture
def ray_executor(monkeypatch) -> Iterator[None]:
    monkeypatch.setenv(EXECUTOR_ENV, "ray")
    yield
    ray.shutdown()
    import vidmem.store.executor

    vidmem.store.executor._RAY = None


def test_an_unknown_executor_is_named_with_the_choices(monkeypatch):
    monkeypatch.setenv(EXECUTOR_ENV, "spark")
    with pytest.raises(ParamsError, match="VIDMEM_EXECUTOR='spark'.*local, ray"):
        get_executor()


def _kill_each(titles: list[str], stop: threading.Event, killed: list[str]) -> None:
    """SIGKILL the first process that Ray has titled `titles[0]` (it does so while the process
    runs that task or actor), then the first titled `titles[1]`, and so on."""
    pending = list(titles)
    while pending and not stop.is_set():
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(pending[0].encode()):
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(pending.pop(0))
                break
        time.sleep(0.005)


def test_killed_workers_are_retried_and_the_output_is_identical(
        videos, local_features, tmp_path, ray_executor):
    """A decode actor, then an extract actor, each killed mid-chunk: Ray restarts them (the
    extract one reloads the model) and retries the chunk, and every output byte is as local."""
    titles = ["ray::DecodeWorker.run", "ray::_ChunkExtractor.run"]
    killed: list[str] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_each, args=(titles, stop, killed), daemon=True)
    killer.start()
    params = {**demo_params(), "cache": {"dir": str(tmp_path / "cache")}}
    try:
        result = features_for_videos(videos, tmp_path / "out", Params(params), BACKEND, progress=False)
    finally:
        stop.set()
        killer.join()
    assert killed == titles, f"killed only {killed}"
    assert not result.skipped
    assert tree_digests(tmp_path / "out") == local_features


def test_workers_hand_results_over_through_an_s3_cache(videos, local_features, tmp_path,
                                                      s3_cache, ray_executor):
    """`cache.dir: s3://...`, as on a cluster: Ray's workers store entries in the bucket, the
    stage places them, and the bytes are the local run's; a second run finds every entry."""
    params = {**demo_params(), "cache": {"dir": s3_cache}}
    features_for_videos(videos, tmp_path / "first", Params(params), BACKEND, progress=False)
    assert tree_digests(tmp_path / "first") == local_features
    again = decode_step(videos, tmp_path / "frames", decode_config(Params(params)), cache_dir=s3_cache,
                        progress=False)
    assert again.cache_hits == len(again.decoded) == 12


def test_ray_needs_the_per_video_cache_to_hand_results_over(videos, tmp_path, ray_executor):
    params = {**demo_params(), "cache": {"dir": None}}
    with pytest.raises(ParamsError, match="cache.dir is null"):
        decode_step(videos, tmp_path / "frames", decode_config(Params(params)), cache_dir=None,
                    progress=False)


def kill_session(session: int) -> None:
    """SIGKILL every process of a session (they each have their own process group) and wait
    until none is left."""
    deadline = time.time() + 30
    while time.time() < deadline:
        members = [pid for pid, fields in processes().items() if int(fields[3]) == session]
        if not members:
            return
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


DRIVER = """
import sys, yaml
from vidmem.backends import decode_config
from vidmem.core.params import Params
from vidmem.video.frames import decode_step
params = yaml.safe_load(open(sys.argv[1]))
report = decode_step(sys.argv[2], sys.argv[3], decode_config(Params(params)), "skip", sys.argv[4],
                     progress=False)
print(f"decoded {len(report.decoded)} from cache {report.cache_hits}")
"""


def test_a_killed_driver_leaves_no_output_and_the_rerun_does_only_the_rest(videos, tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(demo_params()))
    cache, out = tmp_path / "cache", tmp_path / "frames"
    command = [sys.executable, "-c", DRIVER, str(params_file), str(videos), str(out), str(cache)]
    env = {**os.environ, EXECUTOR_ENV: "ray"}
    driver = subprocess.Popen(command, env=env, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while len(list(cache.glob("decode/*/*.json"))) < 2 and time.time() < deadline:
            time.sleep(0.01)
        os.kill(driver.pid, signal.SIGKILL)  # the driver alone, mid-run
        driver.wait()
    finally:
        # Then all it started (the embedded Ray, and workers that may still be finishing a
        # video), so nothing outlives the test and the cache no longer changes.
        kill_session(driver.pid)
    done_before_rerun = len(list(cache.glob("decode/*/*.json")))
    assert 2 <= done_before_rerun < 12, "the driver was not killed mid-run"
    assert not out.exists(), "a killed run left an output that looks complete"

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"decoded 12 from cache {done_before_rerun}" in rerun.stdout
    assert len(ShardReader(out).stems()) == 12
    # The entries went into the pack the output links: no loose copies are left behind.
    assert not list(cache.glob("decode/*/*.json"))
    assert len(list(cache.glob("decode/*/packs/*.tar"))) == 1


@pytest.mark.e2e
def test_dvc_stages_on_ray_write_the_bytes_local_wrote_and_rerun_nothing(tmp_path):
    """The executor is no param: switching it leaves `dvc status` clean, and forcing the
    per-video stages on Ray (with an empty per-video cache) rewrites the same bytes."""
    def ray_ready(params) -> None:
        params["cache"]["dir"] = ".cache/vidmem"
        use_backends(params, {BACKEND: "lstm"})

    (tmp_path / "project").mkdir()
    project = tiny_project(tmp_path / "project", ray_ready)
    outputs = ["data/frames", f"data/features/{BACKEND}"]
    sh(["dvc", "repro", f"extract@{BACKEND}"], project)
    local = {out: tree_digests(project / out) for out in outputs}

    on_ray = {EXECUTOR_ENV: "ray"}
    status = sh(["dvc", "status", f"extract@{BACKEND}"], project, env=on_ray).stdout
    assert status_stages(status) <= {"scan"}, status  # scan: always changed, when listed
    shutil.rmtree(project / ".cache/vidmem")
    logs = ""
    for stage in ("decode", f"extract@{BACKEND}"):
        run = sh(["dvc", "repro", "--force", "--single-item", stage], project, env=on_ray)
        logs += run.stdout + run.stderr
    assert logs.count(f"{EXECUTOR_ENV}=ray: per-video work on Ray") == 2, logs
    assert "decoded 16 video(s) (0 from cache)" in logs
    assert f"extracted 16 video(s) with {BACKEND} (0 from cache)" in logs
    assert {out: tree_digests(project / out) for out in outputs} == local
    assert status_stages(sh(["dvc", "status", f"extract@{BACKEND}"], project).stdout) <= {"scan"}


def test_a_running_ray_is_joined_not_started_anew(videos, tmp_path):
    """`ray start --head` on the machine, then the stage: it joins that Ray (1 CPU here, where
    an embedded one would take every CPU) and decodes every video."""
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(demo_params()))
    ray_cli = Path(sys.executable).with_name("ray")
    sh([str(ray_cli), "start", "--head", "--num-cpus", "1", "--include-dashboard=false",
        "--disable-usage-stats"], tmp_path)
    try:
        run = subprocess.run(
            [sys.executable, "-c", DRIVER, str(params_file), str(videos),
             str(tmp_path / "frames"), str(tmp_path / "cache")],
            env={**os.environ, EXECUTOR_ENV: "ray"}, capture_output=True, text=True,
            timeout=300)
    finally:
        sh([str(ray_cli), "stop", "--force"], tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"per-video work on Ray {ray.__version__}, 1 CPU(s)" in run.stderr
    assert "decoded 12 from cache 0" in run.stdout
