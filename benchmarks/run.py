"""Benchmark vidmem's expensive steps against their floors, side by side in one run.

    python benchmarks/run.py                       # 64 synthetic videos, writes BENCHMARKS.md
    python benchmarks/run.py --videos 2000 --seconds 7 --fps 30   # closer to MediaEval scale
    python benchmarks/run.py --backends efficientnet_lite0 inception_v3  # more backends

Every figure is a ratio of two timings taken in the same run on the same machine, so it holds on
a noisy machine. Each benchmark is a module of `benchmarks/bench/` that times the library's own
public functions:
- `decode`: the decode stage's code vs a bare ffmpeg command that outputs the same frames to
  /dev/null (the floor, same filter), and vs the naive approach (one ffmpeg seek per frame);
- `decode_long`: the same on 5-minute 720p H.264 clips (`--long-clips`, `--long-seconds`),
  against the seek floor (8 ffmpeg processes per clip, `-ss` before `-i`) and a whole-stream pass;
- `extract`, per backend (`--backends`; default: params.yaml's listed backends that read
  frames): frames/s through
  `Backend.extract_videos` vs the bare forward pass on pre-made tensors of the same batch size,
  taking turns on `--chunks` chunks of the videos in one process; peak RSS of each side from a
  separate run; peak RSS on a quarter of the videos vs all of them; features under mixed
  precision (bf16, fp16) vs fp32 (relative L2 error, cosine, frames/s);
- `train`: seconds per epoch of the reference model, on the CPU and on CUDA when present;
- `repro`: a no-op `dvc repro` in this repo, and decode + extract
  (`vidmem.app.pipeline.features_for_videos`) after adding 1% more videos, with the per-video cache,
  vs the full run;
- `footprint`: bytes per video on disk (workspace, DVC cache, per-video cache; `du`, hard links
  once) after `dvc repro` on clips panning across sample photographs, now and at an older
  commit (`--footprint-before`);
- `dvc_layout`: `dvc commit`, `dvc status` and `dvc checkout` on a stage output of 1k, 10k and
  50k per-video files vs the same bytes in shards of 100 videos;
- `scaleout`: decode → extract with VIDMEM_EXECUTOR=local vs Ray with 1 and 2 CPUs
  (each in a fresh process; Ray's start-up timed apart), output sha256 compared, and Ray's cost
  per task on no-op work;
- `memory`: peak RSS of concat, train (2 epochs) and evaluate at 2,000, 8,000 and 32,000 videos
  of synthetic features, and training samples/s streamed from disk vs in memory.
`--only decode memory` runs some of them and keeps the other results. Results go to
benchmarks/results.json and BENCHMARKS.md (machine, versions, date).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.decode import bench_decode
from bench.decode_long import bench_decode_long
from bench.dvc_layout import bench_dvc_layout
from bench.extract import PHASES, bench_extract, bench_extract_memory, bench_precision
from bench.footprint import bench_footprint
from bench.harness import ROOT, WORK, bench_params, own_peak_rss_mb, versions
from bench.memory import PHASES as MEMORY_PHASES
from bench.memory import bench_memory
from bench.report import write_markdown
from bench.repro import bench_incremental, bench_noop_repro
from bench.scaleout import PHASES as SCALEOUT_PHASES
from bench.scaleout import bench_scaleout
from bench.train import bench_train
from bench.videos import folder_of, make_videos

from vidmem.backends import backend_facts
from vidmem.core.params import Params

BENCHMARKS = ["decode", "decode_long", "extract", "train", "repro", "memory", "footprint",
              "dvc_layout", "scaleout"]


def _short_side(value: str) -> int | str:
    return value if value == "auto" else int(value)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=64, help="synthetic videos (size knob)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--short-side", type=_short_side, default="auto",
                        help="decode.short_side: a number, or auto (params.yaml's default: the "
                             "backends' input size, frames stored at their shared geometry)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train-samples", type=int, default=1000)
    parser.add_argument("--train-hidden", type=int, default=1024,
                        help="LSTM hidden size in the train benchmark (reference: 1024)")
    parser.add_argument("--footprint-videos", type=int, default=24)
    parser.add_argument("--footprint-seconds", type=float, default=7.0)
    parser.add_argument("--footprint-formats", nargs="*", default=["webp", "png", "jpeg"],
                        help="other decode.format values to measure beside the default")
    parser.add_argument("--layout-videos", type=int, nargs="+", default=[1000, 10000, 50000],
                        help="stage output sizes for dvc_layout")
    parser.add_argument("--footprint-before", default="70d01e5",
                        help="commit whose layout the footprint is compared with ('none': "
                             "skip the comparison)")
    parser.add_argument("--scaleout-videos", type=int, default=1024,
                        help="videos for scaleout (Ray's start-up is a fixed cost of seconds: "
                             "with too few videos the ratio measures start-up, not the engine)")
    parser.add_argument("--scaleout-turns", type=int, default=1,
                        help="times local and Ray with 2 CPUs take turns (the best counts)")
    parser.add_argument("--long-clips", type=int, default=3, help="clips for decode_long")
    parser.add_argument("--long-seconds", type=int, default=300, help="their length")
    parser.add_argument("--chunks", type=int, default=10,
                        help="extract stage and floor take turns on this many chunks of videos")
    parser.add_argument("--precision-frames", type=int, default=128,
                        help="frames for the mixed-precision comparison (amp on a CPU is slow)")
    parser.add_argument("--results-dir", type=Path, default=ROOT,
                        help="where benchmarks/results.json and BENCHMARKS.md are read and "
                             "written (default: this repo)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=BENCHMARKS,
                        help="benchmarks to run (default: all); the others keep their results")
    parser.add_argument("--memory-sizes", type=int, nargs="+", default=[2000, 8000, 32000])
    parser.add_argument("--memory-throughput-n", type=int, default=8000)
    parser.add_argument("--memory-hidden", type=int, default=1024,
                        help="LSTM hidden size in the memory benchmark (reference: 1024)")
    parser.add_argument("--backends", nargs="+", metavar="NAME",
                        help="backends from params.yaml to time (default: its `backends` list); "
                             "torch backbones whose weights are not here run with random "
                             "weights, labelled so")
    # A child process runs one extract phase, so its peak RSS is its own (bench.harness.in_child).
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--phase-out", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--memory-n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scaleout-config", help=argparse.SUPPRESS)
    return parser.parse_args()


@dataclass
class Run:
    """What every benchmark may use: the arguments, the params the stages would read, the
    backends to time and the synthetic videos (made once, for those that need them)."""

    args: argparse.Namespace
    params: Params
    backends: list[str]
    videos: list = field(default_factory=list)

    def videos_folder(self, name: str, videos: list | None = None) -> Path:
        folder = WORK / name
        shutil.rmtree(folder, ignore_errors=True)
        return folder_of(self.videos if videos is None else videos, folder)


def run_decode(run: Run) -> dict:
    return {"decode": bench_decode(run.args, run.videos_folder("videos_all"))}


def run_extract(run: Run) -> dict:
    frames = WORK / "decode_out"  # the decode stage's output, as the extract stage reads it
    extract = {name: bench_extract(run.args, name, frames) for name in run.backends}
    first = run.backends[0]
    torch_backends = [n for n in run.backends if run.params.backend_section(n).get("kind") == "torch"]
    return {"extract": extract,
            "extract_memory": bench_extract_memory(run.args, first, frames,
                                                   extract[first]["stage"]),
            "precision": bench_precision(run.args, torch_backends[0], frames)
            if torch_backends else None}


def run_repro(run: Run) -> dict:
    return {"noop_repro": bench_noop_repro(),
            "incremental": bench_incremental(run.args, run.videos, run.backends[0])}


def run_scaleout(run: Run) -> dict:
    many = make_videos(run.args, WORK / "videos", 0, run.args.scaleout_videos)
    return {"scaleout": bench_scaleout(run.args, run.videos_folder("videos_scaleout", many),
                                       run.backends[0])}


# Each benchmark: what it needs run first, and the function that returns its results.json keys.
BENCHMARK_TABLE: dict[str, tuple[list[str], Callable[[Run], dict]]] = {
    "decode": ([], run_decode),
    "decode_long": ([], lambda run: {"decode_long": bench_decode_long(run.args)}),
    "extract": (["decode"], run_extract),  # extract reads what the decode benchmark wrote
    "train": ([], lambda run: {"train": bench_train(run.args)}),
    "repro": ([], run_repro),
    "memory": ([], lambda run: {"memory": bench_memory(run.args)}),
    "footprint": ([], lambda run: {"footprint": bench_footprint(run.args)}),
    "dvc_layout": ([], lambda run: {"dvc_layout": bench_dvc_layout(run.args)}),
    "scaleout": ([], run_scaleout),
}
NEEDS_VIDEOS = {"decode", "extract", "repro", "scaleout"}


def frame_backends(params: Params) -> list[str]:
    """params.yaml's listed backends that read frames: what the extract benchmark can time
    (caption and precomputed backends have no frames/s, and need a split or files of their own)."""
    return [name for name in params.backends if backend_facts(params, name).reads_frames]


def main() -> None:
    args = parse_args()
    if args.phase:
        phase = {**PHASES, **MEMORY_PHASES, **SCALEOUT_PHASES}[args.phase]
        result = phase(args)
        result["own_peak_rss_mb"] = own_peak_rss_mb()
        Path(args.phase_out).write_text(json.dumps(result))
        return

    results_file = args.results_dir / "benchmarks" / "results.json"
    results_file.parent.mkdir(parents=True, exist_ok=True)
    results: dict = json.loads(results_file.read_text()) if results_file.exists() else {}
    record = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "argv": " ".join(sys.argv[1:]), "versions": versions(),
              "config": {k: getattr(args, k) for k in ("videos", "seconds", "fps", "width",
                                                       "height", "frames", "batch_size",
                                                       "precision_frames", "chunks")}}
    if set(args.only) == set(BENCHMARKS):
        results.update(record)
    else:  # a partial run: say when and how its parts were made
        earlier = [r for r in results.get("partial_runs", []) if r["only"] != args.only]
        results["partial_runs"] = [*earlier, {**record, "only": args.only}]  # latest of each
    params = bench_params(args)
    backends = args.backends or frame_backends(params)
    if not backends and "extract" in args.only:
        raise SystemExit("no listed backend reads frames: name one with --backends")
    todo = [name for name in BENCHMARKS if name in args.only
            or any(name in BENCHMARK_TABLE[wanted][0] for wanted in args.only)]
    run = Run(args, params, backends, make_videos(args, WORK / "videos", 0, args.videos)
              if NEEDS_VIDEOS & set(todo) else [])
    for name in todo:
        print(f"{name} ...", flush=True)
        found = BENCHMARK_TABLE[name][1](run)
        results.update(found)
        print(found, flush=True)
    results_file.write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results, args.results_dir / "BENCHMARKS.md")
    print(f"wrote {args.results_dir / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
