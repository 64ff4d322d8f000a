"""Stage decode: N evenly spaced RGB frames per video → one uint8 .npy per video."""

from vidmem.cli import run_stage, stage_parser
from vidmem.files import atomic_dir, write_json
from vidmem.frames import decode_videos, list_videos
from vidmem.params import DataConfig, DecodeConfig, lookup


def main(args, params):
    data = DataConfig.from_params(params)
    config = DecodeConfig.from_params(params)
    videos = list_videos(data.videos_dir)
    with atomic_dir(args.out) as out:
        report = decode_videos(videos, out, config, data.on_bad_input,
                               cache_root=lookup(params, "cache.dir", None),
                               progress=not args.no_progress)
    write_json(args.report, {"counts": report.counts(), "decoded": report.decoded,
                             "skipped": report.skipped, "repeated_frames": report.repeated})
    write_json(args.metrics, report.counts())
    print(f"decoded {len(report.decoded)} video(s) ({report.cache_hits} from cache), "
          f"skipped {len(report.skipped)}: see {args.report}")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--out", required=True, help="folder for <video stem>.npy frame files")
    parser.add_argument("--report", required=True, help="JSON report of decoded/skipped videos")
    parser.add_argument("--metrics", required=True, help="JSON counts for `dvc metrics`")
    run_stage(parser, main)
