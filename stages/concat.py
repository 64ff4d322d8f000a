"""Stage concat: per-video features → one [videos, frames, dim] array, ids aligned with labels."""

from vidmem.cli import run_stage, stage_parser
from vidmem.dataset import dataset_from_reports
from vidmem.features import concat_features
from vidmem.params import DataConfig, as_bool, as_int, lookup


def main(args, params):
    data = DataConfig.from_params(params)
    dataset = dataset_from_reports(data.ground_truth, args.decode_report, data.on_bad_input)
    misalign = as_bool(lookup(params, "concat.misalign_control", False), "concat.misalign_control")
    seed = as_int(lookup(params, "base.seed"), "base.seed", 0) if misalign else None
    shape = concat_features(args.features, dataset.videos, args.out, misalign_seed=seed)
    if misalign:
        print("CONTROL: features deliberately misaligned with their videos (concat.misalign_control)")
    print(f"concat {args.backend}: {shape}")


if __name__ == "__main__":
    parser = stage_parser(__doc__, backend=True)
    parser.add_argument("--features", required=True, help="extract stage output folder")
    parser.add_argument("--decode-report", required=True, help="decode stage JSON report")
    parser.add_argument("--out", required=True, help=".npz file to write")
    run_stage(parser, main)
