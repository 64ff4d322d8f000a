"""Stage split: deterministic train/val/test lists of the labelled, decoded videos."""

from vidmem.core.cli import run_stage, stage_parser
from vidmem.core.files import write_json
from vidmem.data.dataset import open_dataset
from vidmem.data.split import official_split, split_videos


def main(args, params):
    data = params.data
    source = open_dataset(data)
    dataset = source.used_videos(args.decode_report)
    config = params.split
    parts = (official_split(dataset, config) if config.source == "official"
             else split_videos(dataset.videos, config))
    counts = {**dataset.counts(), **{f"n_{k}": len(v) for k, v in parts.items()}}
    if data.captions:  # checked now so a broken captions file is found before anyone uses it
        captions = source.captions()
        counts["videos_without_caption"] = sum(v not in captions for v in dataset.videos)
        for part, names in (dataset.official or {}).items():
            dataset.parts[part]["captioned"] = sum(v in captions for v in names)
    counts.update({f"part_{part}_{key}": value for part, about in dataset.parts.items()
                   for key, value in about.items()})
    write_json(args.out, parts)
    # Counts are diagnostics, not results to compare: the report holds them (#34).
    write_json(args.report, {"counts": counts, "parts": dataset.parts, "skipped": dataset.skipped})
    if config.source == "official":
        print(f"split: official parts of {dataset.dataset}: its training part "
              f"({dataset.parts['train']['used']} videos used) became train and val, its "
              f"labelled evaluation part ({dataset.parts['test']['used']}) became test"
              + (f"; {dataset.parts['withheld']['videos']} videos of its test part have no "
                 "labels (predict them with `vidmem predict`)" if "withheld" in dataset.parts
                 else ""))
    print("split: " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()) +
          f"; {len(dataset.skipped)} video(s) skipped, see {args.report}")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--decode-report", required=True, help="decode stage JSON report")
    parser.add_argument("--out", required=True, help="JSON file with the three id lists")
    parser.add_argument("--report", required=True,
                        help="JSON report: counts, the data set's parts, skipped videos")
    run_stage(parser, main)
