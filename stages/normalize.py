"""Stage normalize: resize every video's frames to one backend's input size (uint8)."""

from vidmem.backends import input_spec
from vidmem.cli import run_stage, stage_parser
from vidmem.features import item_files
from vidmem.files import atomic_dir, write_json
from vidmem.normalize import SPEC_FILE, normalize_videos
from vidmem.params import lookup


def main(args, params):
    spec = input_spec(params, args.backend)
    if spec is None:
        with atomic_dir(args.out) as out:
            write_json(out / SPEC_FILE, None)
        print(f"backend {args.backend} takes no frames: nothing to normalize")
        return
    with atomic_dir(args.out) as out:
        hits = normalize_videos(item_files(args.frames), out, spec,
                                cache_root=lookup(params, "cache.dir", None),
                                progress=not args.no_progress)
    print(f"normalized for {args.backend}: {spec.height}x{spec.width} {spec.resize}, values "
          f"{spec.values} ({hits} video(s) from cache)")


if __name__ == "__main__":
    parser = stage_parser(__doc__, backend=True)
    parser.add_argument("--frames", required=True, help="decode stage output folder")
    parser.add_argument("--out", required=True, help="folder for this backend's frames")
    run_stage(parser, main)
