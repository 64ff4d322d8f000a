"""Stage demo_data: write the synthetic demo videos, their MediaEval-format ground truth and captions."""

from vidmem.core.cli import run_stage, stage_parser
from vidmem.data.demo import DemoConfig, make_demo_dataset


def main(args, params):
    make_demo_dataset(args.videos, args.ground_truth, params.parsed(DemoConfig),
                      captions=args.captions)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--videos", required=True, help="folder to write the .webm files into")
    parser.add_argument("--ground-truth", required=True, help="CSV file to write")
    parser.add_argument("--captions", help="captions file to write (MediaEval format)")
    run_stage(parser, main)
