"""Stage extract: one feature vector per frame of each video's network input (the normalize
stage's frames, already at the backend's geometry), or per video for caption backends → shards
of per-video .npy arrays."""

import sys

from vidmem.backends import backend_config
from vidmem.backends.base import extract_step
from vidmem.core.cli import run_stage, stage_parser
from vidmem.core.errors import DataError
from vidmem.data.dataset import open_dataset
from vidmem.store.shards import ShardReader


def main(args, params):
    config = backend_config(params, args.backend)
    if config.spec is not None and not len(ShardReader(args.frames)):
        raise DataError(f"backend {args.backend} needs frames, but decode and normalize wrote none "
                        f"({args.frames} is empty; see data/reports/decode.json). Point "
                        "data.videos_dir at your videos, or for a features-only data set list "
                        "only backends that need no frames (precomputed, captions)")
    backend = config.build(params.cache.dir)
    backend.use_dataset(open_dataset(params.data), args.split)  # a key is read when used
    result = extract_step(args.frames, args.out, backend, progress=not args.no_progress)
    if result.info["random_weights"]:
        print(f"WARNING: backend {args.backend} uses RANDOM weights; its features and every "
              "metric built on them are labelled random_weights: true", file=sys.stderr)
    for warning in result.info.get("warnings", []):
        print(f"WARNING: backend {args.backend}: {warning}", file=sys.stderr)
    if result.info.get("input_range_matches") is False:
        print(f"WARNING: backend {args.backend} was fed values in "
              f"{result.info['observed_input_range']} but its weights expect "
              f"{result.info['expected_input_range']}: check backend.{args.backend}.input.value",
              file=sys.stderr)
    print(f"extracted {result.videos} video(s) with {args.backend} ({result.cache_hits} from "
          f"cache), weights: {result.info['weights']}")


if __name__ == "__main__":
    parser = stage_parser(__doc__, backend=True)
    parser.add_argument("--frames", required=True,
                        help="normalize stage output folder (the backend's network-input frames)")
    parser.add_argument("--out", required=True, help="folder for the features (shards + index.json)")
    parser.add_argument("--split", help="split stage JSON (for backends that fit on training data)")
    run_stage(parser, main)
