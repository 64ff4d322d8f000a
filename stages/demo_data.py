"""Stage demo_data: write the synthetic demo videos, their MediaEval-format ground truth and
captions. When data.* points at another data set, it writes an empty demo instead (no clips
encoded for nothing); pointing data.* back at data/demo re-runs it."""

from pathlib import Path

from vidmem.core.cli import run_stage, stage_parser
from vidmem.data.demo import DemoConfig, make_demo_dataset


def main(args, params):
    data = params.data
    ours = {Path(p).resolve() for p in (args.videos, args.ground_truth, args.captions) if p}
    used = {Path(p).resolve() for p in (data.videos_dir, data.ground_truth, data.captions) if p}
    config = params.parsed(DemoConfig) if ours & used else None
    if config is None:
        print(f"demo_data: data.* reads {data.videos_dir} and {data.ground_truth}, not the demo: "
              "writing an empty demo")
    make_demo_dataset(args.videos, args.ground_truth,
                      config or DemoConfig(n_videos=0),
                      captions=args.captions)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--videos", required=True, help="folder to write the .webm files into")
    parser.add_argument("--ground-truth", required=True, help="CSV file to write")
    parser.add_argument("--captions", help="captions file to write (MediaEval format)")
    run_stage(parser, main)
