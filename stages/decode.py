"""Stage decode: N evenly spaced RGB frames per video → shards of one item per video (uint8 frames in
`decode.format`, vidmem.store.framestore)."""

from vidmem.backends import with_geometry
from vidmem.core.cli import run_stage, stage_parser
from vidmem.core.files import read_json, write_json
from vidmem.video.frames import decode_step, ignored_entries


def main(args, params):
    data = params.data
    config = with_geometry(params.decode, read_json(args.geometry), args.geometry)
    report = decode_step(data.videos_dir, args.out, config,
                         data.on_bad_input, params.cache.dir,
                         progress=not args.no_progress)
    # A folder without a single video is a features-only data set: every backend reads
    # features or captions, and the videos are the ground truth's (vidmem.data.dataset).
    features_only = not report.decoded and not report.skipped
    write_json(args.report, {"counts": report.counts(), "decoded": report.decoded,
                             "skipped": report.skipped, "repeated_frames": report.repeated,
                             "ignored": ignored_entries(data.videos_dir),
                             "features_only": features_only})
    if features_only:
        print(f"no videos in {data.videos_dir}: a features-only run (the videos are the ground "
              "truth's; every backend must be precomputed or captions)")
    print(f"decoded {len(report.decoded)} video(s) ({report.cache_hits} from cache), "
          f"skipped {len(report.skipped)}: see {args.report}")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--geometry", required=True, help="geometry stage JSON")
    parser.add_argument("--out", required=True, help="folder for the frames (shards + index.json)")
    parser.add_argument("--report", required=True,
                        help="JSON report: counts, decoded, skipped and ignored files")
    run_stage(parser, main)
