"""Stage extract: one feature vector per frame with one backend → one .npy per video."""

import sys

from vidmem.backends import create_backend
from vidmem.cli import run_stage, stage_parser
from vidmem.features import INFO_FILE, extract_features
from vidmem.files import atomic_dir, write_json
from vidmem.normalize import read_spec
from vidmem.params import as_int, backend_params, lookup


def main(args, params):
    # The normalize stage recorded the spec it applied; extraction uses exactly that one.
    backend = create_backend(params, args.backend, spec=read_spec(args.normalized))
    batch_size = as_int(backend_params(params, args.backend).get("batch_size", 32),
                        f"backend.{args.backend}.batch_size", 1)
    with atomic_dir(args.out) as out:
        result = extract_features(args.normalized, out, backend, batch_size,
                                  cache_root=lookup(params, "cache.dir", None),
                                  progress=not args.no_progress)
        write_json(out / INFO_FILE, result.info)
    if result.info["random_weights"]:
        print(f"WARNING: backend {args.backend} uses RANDOM weights; its features and every "
              "metric built on them are labelled random_weights: true", file=sys.stderr)
    if result.info.get("input_range_matches") is False:
        print(f"WARNING: backend {args.backend} was fed values in "
              f"{result.info['observed_input_range']} but its weights expect "
              f"{result.info['expected_input_range']}: check backend.{args.backend}.input.value",
              file=sys.stderr)
    print(f"extracted {result.videos} video(s) with {args.backend} ({result.cache_hits} from "
          f"cache), weights: {result.info['weights']}")


if __name__ == "__main__":
    parser = stage_parser(__doc__, backend=True)
    parser.add_argument("--normalized", required=True, help="normalize stage output folder")
    parser.add_argument("--out", required=True, help="folder for <video stem>.npy features")
    run_stage(parser, main)
