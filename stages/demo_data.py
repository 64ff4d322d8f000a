"""Stage demo_data: write the synthetic demo videos and their MediaEval-format ground truth."""

from vidmem.cli import run_stage, stage_parser
from vidmem.demo import DemoConfig, make_demo_dataset
from vidmem.params import as_float, as_int, lookup


def main(args, params):
    config = DemoConfig(
        n_videos=as_int(lookup(params, "demo.n_videos"), "demo.n_videos", 1),
        seconds=as_float(lookup(params, "demo.seconds"), "demo.seconds", 0.1),
        fps=as_int(lookup(params, "demo.fps"), "demo.fps", 1),
        width=as_int(lookup(params, "demo.width"), "demo.width", 16),
        height=as_int(lookup(params, "demo.height"), "demo.height", 16),
        noise=as_float(lookup(params, "demo.noise"), "demo.noise", 0),
        seed=as_int(lookup(params, "demo.seed"), "demo.seed", 0),
    )
    make_demo_dataset(args.videos, args.ground_truth, config)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--videos", required=True, help="folder to write the .webm files into")
    parser.add_argument("--ground-truth", required=True, help="CSV file to write")
    run_stage(parser, main)
