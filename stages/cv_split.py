"""Stage cv_split: the k seeded cross-validation folds of the labelled, decoded videos (`cv.folds`;
an empty list writes no fold and the per-fold stages do not exist)."""

from vidmem.core.cli import run_stage, stage_parser
from vidmem.core.files import write_json
from vidmem.data.dataset import open_dataset
from vidmem.learn.crossval import kfold_splits


def main(args, params):
    config = params.cv
    data = params.data
    folds = []
    if config.folds:
        dataset = open_dataset(data).used_videos(args.decode_report)
        folds = kfold_splits(dataset.videos, config.folds, config.seed, config.val_fraction)
    write_json(args.out, {"folds": folds})
    print(f"cv_split: {config.folds} fold(s)" + (
        f", test parts of {', '.join(str(len(f['test'])) for f in folds)} videos" if folds else
        " (cross-validation off: set cv.folds, e.g. [0,1,2,3,4])"))


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--decode-report", required=True, help="decode stage JSON report")
    parser.add_argument("--out", required=True, help="JSON file with each fold's id lists")
    run_stage(parser, main)
