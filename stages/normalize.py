"""Stage normalize: resize every video's frames to one backend's input size (uint8)."""

from vidmem.backends import input_spec
from vidmem.cli import run_stage, stage_parser
from vidmem.errors import DataError
from vidmem.files import item_files
from vidmem.normalize import normalize_step
from vidmem.params import CacheConfig


def main(args, params):
    spec = input_spec(params, args.backend)
    if spec is not None and not item_files(args.frames):
        raise DataError(f"backend {args.backend} needs frames, but the decode stage wrote none "
                        f"({args.frames} is empty; see data/reports/decode.json). Point "
                        "data.videos_dir at your videos, or for a features-only data set list "
                        "only backends that need no frames (precomputed, captions)")
    hits = normalize_step(args.frames, args.out, spec, CacheConfig.from_params(params).dir,
                          progress=not args.no_progress)
    if spec is None:
        print(f"backend {args.backend} takes no frames: nothing to normalize")
    else:
        print(f"normalized for {args.backend}: {spec.height}x{spec.width} {spec.resize}, values "
              f"{spec.values} ({hits} video(s) from cache)")


if __name__ == "__main__":
    parser = stage_parser(__doc__, backend=True)
    parser.add_argument("--frames", required=True, help="decode stage output folder")
    parser.add_argument("--out", required=True, help="folder for this backend's frames")
    run_stage(parser, main)
