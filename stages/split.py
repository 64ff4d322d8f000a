"""Stage split: deterministic train/val/test lists of the labelled, decoded videos."""

from vidmem.core.cli import run_stage, stage_parser
from vidmem.core.files import write_json
from vidmem.data.dataset import dataset_from_reports
from vidmem.data.groundtruth import read_captions
from vidmem.data.split import official_split, split_videos


def main(args, params):
    data = params.data
    dataset = dataset_from_reports(data.ground_truth, args.decode_report, data.on_bad_input,
                                   data.format)
    config = params.split
    parts = (official_split(dataset, config) if config.source == "official"
             else split_videos(dataset.videos, config))
    counts = {**dataset.counts(), **{f"n_{k}": len(v) for k, v in parts.items()}}
    if data.captions:  # checked now so a broken captions file is found before anyone uses it
        captions = read_captions(data.captions, data.format)
        counts["videos_without_caption"] = sum(v not in captions for v in dataset.videos)
    write_json(args.out, parts)
    write_json(args.report, {"counts": dataset.counts(), "skipped": dataset.skipped})
    write_json(args.metrics, counts)
    print("split: " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()) +
          f"; {len(dataset.skipped)} video(s) skipped, see {args.report}")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--decode-report", required=True, help="decode stage JSON report")
    parser.add_argument("--out", required=True, help="JSON file with the three id lists")
    parser.add_argument("--report", required=True, help="JSON report of skipped videos")
    parser.add_argument("--metrics", required=True, help="JSON counts for `dvc metrics`")
    run_stage(parser, main)
