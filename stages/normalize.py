"""Stage normalize: one frame backend's network input, checked before any network runs. Each
video's decoded frames at the backend's input geometry (uint8, decode's storage format; decode's
own files when it already stored them so), and the values the network will be fed (per channel
min, max, mean, std) against the range its weights expect: the verdict, `input_range_matches`, is
a metric (metrics/normalize/<backend>.json); the statistics and geometry a report."""

import sys

from vidmem.backends import backend_config
from vidmem.core.cli import run_stage, stage_parser
from vidmem.core.files import atomic_dir, write_json
from vidmem.store.framestore import FrameFormat
from vidmem.store.shards import write_arrays
from vidmem.video.normalize import normalize_step


def main(args, params):
    backend = backend_config(params, args.backend)
    spec = backend.spec
    if spec is None:  # precomputed features, captions: nothing to normalize
        with atomic_dir(args.out) as out:
            write_arrays(out, [])
        write_json(args.report, {"reads_frames": False})
        write_json(args.metrics, {"reads_frames": False})
        print(f"normalize {args.backend}: reads no frames, nothing to do")
        return
    decode = params.decode  # the storage format; no input sizes needed
    metrics = normalize_step(args.frames, args.out, spec, backend.weights_input_range(),
                             FrameFormat(decode.format, decode.jpeg_quality), params.cache.dir,
                             progress=not args.no_progress)
    write_json(args.report, {"reads_frames": True, **metrics})
    write_json(args.metrics, {"input_range_matches": metrics["input_range_matches"]})
    if metrics["input_range_matches"] is False:
        print(f"WARNING: backend {args.backend} would be fed values in "
              f"{metrics['observed_input_range']} ({spec.values}), but its weights expect "
              f"{metrics['expected_input_range']}: check backend.{args.backend}.input.value "
              "before extracting (the reference TF-Hub run lost 0.16 Spearman this way)",
              file=sys.stderr)
    how = "decode's files, linked" if metrics["stored_as_decoded"] else \
        f"{metrics['resized']} resized"
    print(f"normalize {args.backend}: {metrics['videos']} video(s) at {metrics['geometry']} "
          f"({how}), values {metrics['observed_input_range']}, weights expect "
          f"{metrics['expected_input_range']}")


if __name__ == "__main__":
    parser = stage_parser(__doc__, backend=True)
    parser.add_argument("--frames", required=True, help="decode stage output folder")
    parser.add_argument("--out", required=True, help="folder for the network-input frames")
    parser.add_argument("--report", required=True,
                        help="JSON report: geometry, value statistics per channel, ranges")
    parser.add_argument("--metrics", required=True,
                        help="JSON for `dvc metrics`: input_range_matches")
    run_stage(parser, main)
