"""Stage normalize: resize every video's frames to one backend's input size (uint8)."""

from vidmem.backends import input_spec
from vidmem.cli import run_stage, stage_parser
from vidmem.normalize import normalize_step
from vidmem.params import CacheConfig


def main(args, params):
    spec = input_spec(params, args.backend)
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
