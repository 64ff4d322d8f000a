"""Stage cv_split: the k cross-validation folds of the labelled, decoded videos (`cv.folds`; an
empty list writes no fold and the per-fold stages do not exist). The test parts are seeded
(`cv.seed`, default `base.seed`), or read from `cv.folds_file` (a `video,fold` CSV)."""

from vidmem.core.cli import run_stage, stage_parser
from vidmem.core.files import write_json
from vidmem.data.dataset import open_dataset
from vidmem.learn.crossval import kfold_splits, read_fold_file


def main(args, params):
    config = params.cv
    folds, without_fold = [], []
    if config.folds:
        data = params.data
        videos = open_dataset(data).used_videos(args.decode_report).videos
        parts = None
        if config.folds_file:
            parts, without_fold = read_fold_file(config.folds_file, videos, config.folds,
                                                 data.on_bad_input)
            videos = [v for v in videos if v not in set(without_fold)]
        folds = kfold_splits(videos, config.folds, config.seed, config.val_fraction, parts)
    write_json(args.out, {"folds": folds, "source": config.folds_file or "seeded",
                          "without_fold": without_fold} if folds else {"folds": []})
    print(f"cv_split: {config.folds} fold(s)" + (
        f" ({config.folds_file or f'seed {config.seed}'}), test parts of "
        f"{', '.join(str(len(f['test'])) for f in folds)} videos" if folds else
        " (cross-validation off: set cv.folds, e.g. [0,1,2,3,4])")
        + (f"; {len(without_fold)} video(s) have no fold in {config.folds_file} and are left "
           f"out, e.g. {without_fold[:3]}" if without_fold else ""))


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--decode-report", required=True, help="decode stage JSON report")
    parser.add_argument("--out", required=True, help="JSON file with each fold's id lists")
    run_stage(parser, main)
