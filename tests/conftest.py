"""Shared fixtures: small real videos made with the same ffmpeg the pipeline uses."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from ruamel.yaml import YAML

from vidmem.core.params import DecodeConfig
from vidmem.data.demo import encode_webm
from vidmem.video.ffmpeg_bin import ffmpeg_executable

# Property-based tests: a fixed example budget in CI (a few seconds per test); `deep` for a long
# search by hand (HYPOTHESIS_PROFILE=deep). Fixtures are reset per test, not per example, which
# is fine here: each example writes the same file anew.
_FUZZ_CHECKS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
settings.register_profile("ci", max_examples=200, deadline=None,
                          suppress_health_check=_FUZZ_CHECKS)
settings.register_profile("deep", max_examples=20_000, deadline=None,
                          suppress_health_check=_FUZZ_CHECKS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parents[1]
# Small real files the tests need, inside the repo (a fresh clone has nothing beside it).
TEST_DATA = Path(__file__).resolve().parent / "data"


def grey_ramp_video(path: Path, n_frames: int, step: int = 9, size=(64, 48), fps: int = 10) -> Path:
    """A video whose frame i is uniformly grey at level 10 + step*i, so a decoded frame's mean
    tells which source frame it was."""
    width, height = size
    levels = [10 + step * i for i in range(n_frames)]
    frames = np.stack([np.full((height, width, 3), v, np.uint8) for v in levels])
    encode_webm(frames, path, fps, ffmpeg_executable())
    return path


def frame_number(frame: np.ndarray, step: int = 9) -> int:
    return int(round((float(frame.mean()) - 10) / step))


@pytest.fixture
def decode_config() -> DecodeConfig:
    return DecodeConfig(n_frames=8, short_side=48, workers=2, short_video="repeat", timeout_s=30,
                        ffmpeg=None)


# --- end-to-end helpers: a copy of this repo with tiny params, driven by the real CLI ---------

TINY_PARAMS = {
    ("demo", "n_videos"): 16, ("demo", "seconds"): 1.0, ("decode", "n_frames"): 4,
    ("decode", "short_side"): 96, ("epochs",): 3, ("model", "hidden_size"): 16,
    ("model", "num_layers"): 2, ("evaluate", "bootstrap_resamples"): 50,
    ("split", "train"): 0.5, ("split", "val"): 0.25, ("split", "test"): 0.25,
    ("backend", "efficientnet_lite0", "frames_per_batch"): 16, ("cache", "dir"): None,
}


def proc_stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the process's command (state, ppid, pgrp, session,
    ...; read from the last parenthesis, as the command may hold spaces and parentheses);
    None once the process has ended."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def processes() -> dict[int, list[str]]:
    """`proc_stat` of every process, by pid; one that ends while listed is left out."""
    listed = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := proc_stat(entry.name)) is not None:
            listed[int(entry.name)] = fields
    return listed


def sh(args: list[str], cwd: Path, check: bool = True,
       env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "DVC_NO_ANALYTICS": "1",
           **(env or {})}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def documented_block() -> dict[str, dict]:
    """The `backend:` and `chains:` entries docs/backends.md gives for pasting into params.yaml
    (the backends that are not listed by default), parsed from its yaml block."""
    import yaml

    text = (REPO / "docs" / "backends.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
                 if b.startswith("backend:"))
    return yaml.safe_load(block)


def documented_backends() -> dict[str, dict]:
    """The documented backend sections (docs/backends.md)."""
    return documented_block()["backend"]


def with_documented_backends(params: dict) -> dict:
    """`params` with the documented sections added under `backend:` and their chains under
    `chains:` (as a user pastes them)."""
    block = documented_block()
    params["backend"] = {**block["backend"], **params["backend"]}
    params["chains"] = {**block["chains"], **params["chains"]}
    return params


def ran_stages(repro_stdout: str) -> set[str]:
    """The stages a `dvc repro` ran. The scan stage (always_changed: DVC never hashes the data
    set's folders itself, vidmem.data.inputs) runs every time; an up-to-date pipeline runs it
    alone."""
    return set(re.findall(r"Running stage '([^']+)'", repro_stdout))


def status_stages(status_stdout: str) -> set[str]:
    """The stages `dvc status` lists as changed (the scan stage always: "always changed")."""
    return set(re.findall(r"^(\S+):$", status_stdout, flags=re.M))


def tiny_project(root: Path, edit: Callable[[Any], None] | None = None) -> Path:
    """Copy this repo's files (as git sees them, without results) into `root`, set TINY_PARAMS
    in its params.yaml, let `edit` change them further, and commit it all in a new git repo."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file() and not name.startswith(("metrics/", "plots/", "benchmarks/")) \
                and name != "dvc.lock":
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    yaml = YAML()
    params = yaml.load(root / "params.yaml")
    set_params(params, TINY_PARAMS)
    if edit is not None:
        edit(params)
    yaml.dump(params, root / "params.yaml")
    commit_all(root, "tiny project")
    return root


def write_demo_latents(params: dict, folder: Path, suffix: str = ".txt",
                       separator: str = " ") -> None:
    """"Features that come with the data set" for a tiny project: the demo's own latent values
    (size, brightness, hue), one file per video with one row, named after the video's stem."""
    from vidmem.data.demo import DemoConfig, demo_latents

    latents = demo_latents(DemoConfig.from_params(params))  # params.yaml's, defaults filled in
    folder.mkdir(parents=True)
    for _, row in latents.iterrows():
        values = separator.join(f"{row[column]:.6f}" for column in ("size", "brightness", "hue"))
        (folder / f"{Path(row['video']).stem}{suffix}").write_text(values + "\n")


def use_backends(params: dict, heads: dict[str, str]) -> None:
    """List these backends, with one chain each named after its backend (`heads`: backend ->
    head), as a test project that swaps the demo's backends needs."""
    params["backends"] = list(heads)
    params["chains"] = {name: {"backend": name, "head": head} for name, head in heads.items()}


def set_params(params: dict, overrides: dict) -> None:
    for keys, value in overrides.items():
        node = params
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value


def commit_all(root: Path, message: str) -> None:
    if not (root / ".git").exists():
        sh(["git", "init", "-q"], root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", message], root)


def pinned_or_skip(name: str, load: Callable[[], Any] | None = None) -> Any:
    """Import `name` (through `load` when given), a package pinned in requirements.txt. Off CI a
    machine without it skips the tests that need it; under CI (CI=true) that is a failure,
    so a broken TensorFlow or Ray install cannot pass as a row of skips."""
    import importlib

    try:
        return load() if load else importlib.import_module(name)
    except ImportError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{name} is pinned in requirements.txt but does not import under CI "
                        f"({exc}): fix the install; CI does not skip it", pytrace=False)
        pytest.skip(f"{name} is not importable ({exc})", allow_module_level=True)


def tensorflow_or_skip():
    """TensorFlow imported the safe way (triton first, see vidmem.backends._tf_import), or skip
    (a failure under CI: `pinned_or_skip`)."""
    from vidmem.backends._tf_import import import_tensorflow

    return pinned_or_skip("tensorflow", import_tensorflow)


def extract_videos(backend, videos: list[np.ndarray], folder: Path):
    """Run `videos` (uint8 frames each) through the real extract driver; return the features
    per video and the info it records (fed range and all)."""
    from vidmem.store.features import open_features
    from vidmem.store.shards import write_arrays

    frames_dir, out = folder / "frames", folder / "features"
    frames_dir.mkdir(parents=True)
    out.mkdir()
    write_arrays(frames_dir, ((f"video{i}", frames) for i, frames in enumerate(videos)))
    result = backend.extract_videos(frames_dir, out, batch_size=4, progress=False)
    features = open_features(out)
    return [features.load(f"video{i}") for i in range(len(videos))], result.info


@pytest.fixture
def s3_cache(monkeypatch):
    """An S3 endpoint on 127.0.0.1 (moto's server) with a bucket `workers`, its credentials
    and address in the environment; yields the cache URL."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3").create_bucket(Bucket="workers")
    yield "s3://workers/vidmem"
    server.stop()


def dataset_of(captions: str | Path | None, on_bad_input: str = "skip",
               data_format: str = "mediaeval2018") -> Any:
    """The data set a backend is handed (`use_dataset`), from these data.* values."""
    from vidmem.core.params import DataConfig
    from vidmem.data.dataset import open_dataset

    return open_dataset(DataConfig({"data": {
        "captions": None if captions is None else str(captions), "on_bad_input": on_bad_input,
        "format": data_format}}))
