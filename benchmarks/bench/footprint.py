"""Disk footprint of the pipeline per video, on clips with natural-image statistics: a copy of
the project runs `dvc repro extract@<backend>` on them, and `du` counts what each location holds
(hard links once): the stage outputs in the workspace, DVC's cache and the per-video cache. The
same clips go through an older commit's layout for comparison (`--footprint-before REV`)."""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np

from bench.harness import ROOT, WORK

SIZE = (640, 360)
# data/normalized: the stored resized frames of layouts before resizing moved into extract.
LOCATIONS = {"workspace": ["data/frames", "data/normalized", "data/features"],
             "dvc_cache": [".dvc/cache"], "per_video_cache": [".cache/vidmem"]}
OUTPUTS = ["data/frames", "data/normalized/{b}", "data/features/{b}"]


def _photos() -> list[np.ndarray]:
    """Photographs that ship with scikit-learn and matplotlib (no download)."""
    import matplotlib.cbook
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = list(load_sample_images().images)
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photos.append(np.asarray(Image.open(f).convert("RGB")))
    return photos


def make_natural_clips(folder: Path, count: int, seconds: float, fps: int = 30) -> list[Path]:
    """H.264 clips of a 640×360 window panning across a photograph (each clip its own photo,
    path and speed), so frames have the statistics of camera footage rather than flat colour."""
    from PIL import Image

    from vidmem.video.ffmpeg_bin import ffmpeg_executable

    folder.mkdir(parents=True, exist_ok=True)
    photos = _photos()
    width, height = SIZE
    clips = []
    for k in range(count):
        path = folder / f"video{k + 1}.mp4"
        clips.append(path)
        if path.exists():
            continue
        rng = np.random.default_rng(k)
        photo = Image.fromarray(photos[k % len(photos)])
        scale = max(1.6 * width / photo.width, 1.6 * height / photo.height) * rng.uniform(1, 1.3)
        canvas = np.asarray(photo.resize((round(photo.width * scale), round(photo.height * scale)),
                                         Image.Resampling.BICUBIC))
        n = round(seconds * fps)
        t = np.linspace(0, 1, n)
        # x sweeps back and forth, y drifts: a slow pan, as a handheld camera would.
        phase_x = 2 * np.pi * (t * rng.uniform(0.3, 1) + rng.uniform())
        phase_y = 2 * np.pi * t * rng.uniform(0.2, 0.6)
        xs = ((canvas.shape[1] - width) * (0.5 + 0.5 * np.sin(phase_x))).astype(int)
        ys = ((canvas.shape[0] - height) * (0.5 + 0.5 * np.cos(phase_y))).astype(int)
        frames = np.stack([canvas[y:y + height, x:x + width] for x, y in zip(xs, ys, strict=True)])
        subprocess.run([ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-y",
                        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
                        "-r", str(fps), "-i", "pipe:", "-c:v", "libx264", "-preset", "veryfast",
                        "-crf", "23", "-pix_fmt", "yuv420p", str(path)],
                       input=frames.tobytes(), check=True)
    return clips


def _project_files(rev: str | None) -> dict[str, bytes]:
    """The project's files at `rev` (None: the working tree as git sees it, without results)."""
    if rev is None:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                                 "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout
        return {name: (ROOT / name).read_bytes() for name in filter(None, listed.split("\0"))
                if (ROOT / name).is_file()}
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT,
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _du(root: Path, paths: list[str]) -> int:
    """Bytes on disk as `du` counts them, each inode once across all `paths`."""
    existing = [p for p in paths if (root / p).exists()]
    if not existing:
        return 0
    out = subprocess.run(["du", "-s", "-c", "--block-size=1", *existing], cwd=root,
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1].split()[0])


def footprint_of(rev: str | None, clips: list[Path], backend: str, work: Path,
                 decode: dict | None = None) -> dict:
    from ruamel.yaml import YAML

    shutil.rmtree(work, ignore_errors=True)
    for name, data in _project_files(rev).items():
        if name.startswith(("metrics/", "plots/", "benchmarks/")) or name == "dvc.lock":
            continue
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)
    videos = work / "data" / "clips"
    videos.mkdir(parents=True)
    for clip in clips:
        os.link(clip, videos / clip.name)
    rng = np.random.default_rng(0)
    (work / "data" / "clips.csv").write_text(
        "video,short-term_memorability,nb_short-term_annotations,long-term_memorability,"
        "nb_long-term_annotations\n" + "".join(
            f"{c.name},{rng.uniform(0.6, 1):.3f},38,{rng.uniform(0.4, 1):.3f},12\n" for c in clips))
    (work / "data" / "clips_captions.txt").write_text(
        "".join(f"{c.name}\tphoto-pan-{k % 3}\n" for k, c in enumerate(clips)))
    yaml = YAML()
    params = yaml.load(work / "params.yaml")
    params["data"].update(videos_dir="data/clips", ground_truth="data/clips.csv",
                          captions="data/clips_captions.txt")
    params["backends"] = [backend]
    params["decode"].update(decode or {})
    yaml.dump(params, work / "params.yaml")
    # The copy's own library (its `src/`), not the installed one: `rev` may be an older layout.
    env = {**os.environ, "PYTHONPATH": str(work / "src"), "GIT_AUTHOR_NAME": "b",
           "GIT_AUTHOR_EMAIL": "b@b",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "p"],
                    ["dvc", "repro", "--quiet", f"extract@{backend}"]):
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"footprint: {' '.join(command)} failed in {work}:\n"
                             f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    n = len(clips)
    per_location = {name: round(_du(work, paths) / n) for name, paths in LOCATIONS.items()}
    all_paths = [p for paths in LOCATIONS.values() for p in paths]
    files = {out.format(b=backend): sum(1 for p in (work / out.format(b=backend)).rglob("*")
                                        if p.is_file())
             for out in OUTPUTS if (work / out.format(b=backend)).exists()}
    return {"rev": rev or "working tree", "videos": n, "decode": decode or {},
            "bytes_per_video_by_location": per_location,
            "bytes_per_video_all_copies": round(_du(work, all_paths) / n),
            "files_per_output": files}


def feature_drift(stored: Path, raw: Path, backend: str) -> dict:
    """How far features made from the stored (compressed) frames are from features made from the
    raw decoded frames: relative L2 error and cosine per frame, as for the fp16 tolerance."""
    from vidmem.store.features import open_features

    errors, cosines = [], []
    reference = open_features(raw / "data" / "features" / backend)
    compared = open_features(stored / "data" / "features" / backend)
    for stem in reference.stems():
        b = reference.load(stem).astype(np.float64)
        a = compared.load(stem).astype(np.float64)
        errors += list(np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1))
        cosines += list((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))
    return {"frames": len(errors), "rel_l2_mean": round(float(np.mean(errors)), 5),
            "rel_l2_max": round(float(np.max(errors)), 5),
            "cosine_min": round(float(np.min(cosines)), 6)}


def files_per_1000_videos(work: Path) -> int:
    """Files in an extract output of 1,000 videos named as MediaEval's (video1 ... video1000),
    written by the stages' own shard writer: its shards, index.json, and info.json."""
    from vidmem.store.shards import write_arrays

    out = work / "files_1000"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    write_arrays(out, ((f"video{i}", np.zeros((8, 4), np.float32)) for i in range(1, 1001)))
    files = sum(1 for p in out.iterdir() if p.is_file()) + 1  # + info.json
    shutil.rmtree(out)
    return files


def bench_footprint(args: argparse.Namespace) -> dict:
    clips = make_natural_clips(WORK / "natural_clips", args.footprint_videos, args.footprint_seconds)
    backend = "efficientnet_lite0"
    after = footprint_of(None, clips, backend, WORK / "footprint_after")  # default params
    default_format = after["decode"].get("format") or _default_format()
    formats = {kind: footprint_of(None, clips, backend, WORK / f"footprint_{kind}",
                                  {"format": kind}) for kind in args.footprint_formats}
    # The reference: raw frames as ffmpeg decodes them (aspect kept, the extract loader
    # resizes), i.e. nothing stored compressed and nothing resized at decode.
    formats["raw"] = footprint_of(None, clips, backend, WORK / "footprint_raw",
                                  {"format": "npy", "short_side": 224})
    before = None if args.footprint_before == "none" else \
        footprint_of(args.footprint_before, clips, backend, WORK / "footprint_before")
    drift = {kind: feature_drift(WORK / f"footprint_{kind}", WORK / "footprint_raw", backend)
             for kind in args.footprint_formats}
    drift[default_format] = feature_drift(WORK / "footprint_after", WORK / "footprint_raw",
                                          backend)
    files_1000 = files_per_1000_videos(WORK)
    return {"clips": f"{len(clips)} H.264 clips, 640x360, {args.footprint_seconds:g} s at 30 fps, "
                     "panning across "
                     "scikit-learn's and matplotlib's sample photographs",
            "backend": backend, "default_format": default_format, "after": after,
            "before": before, "other_formats": formats, "features_vs_raw_frames": drift,
            "bytes_per_video_all_copies": after["bytes_per_video_all_copies"],
            "bytes_per_video_before": before and before["bytes_per_video_all_copies"],
            "max_files_per_output_per_1000_videos": files_1000,
            "feature_rel_l2_vs_raw": drift[default_format]["rel_l2_mean"],
            "projection_bytes": {str(n): after["bytes_per_video_all_copies"] * n
                                 for n in (8000, 1_000_000)}}


def _default_format() -> str:
    from vidmem.core.params import Params

    return Params.load(ROOT / "params.yaml").decode.format
