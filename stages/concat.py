"""Stage concat: per-video features → one [videos, frames, dim] array, ids aligned with labels."""

from vidmem.core.cli import run_stage, stage_parser
from vidmem.data.dataset import open_dataset
from vidmem.store.features import concat_features


def main(args, params):
    data = params.data
    config = params.concat
    dataset = open_dataset(data).used_videos(args.decode_report)
    shape = concat_features(args.features, dataset.videos, args.out,
                            misalign_seed=config.seed if config.misalign_control else None,
                            progress=not args.no_progress)
    if config.misalign_control:
        print("CONTROL: features deliberately misaligned with their videos (concat.misalign_control)")
    print(f"concat {args.backend}: {shape}")


if __name__ == "__main__":
    parser = stage_parser(__doc__, backend=True)
    parser.add_argument("--features", required=True, help="extract stage output folder")
    parser.add_argument("--decode-report", required=True, help="decode stage JSON report")
    parser.add_argument("--out", required=True,
                        help="folder to write (features.npy and videos.json)")
    run_stage(parser, main)
