"""Stage cv_split: the k cross-validation folds of the labelled, decoded videos (`cv.folds`; an
empty list writes no fold: no cv_fusion stage exists, and each cv_train records that
cross-validation is off). The test parts are seeded
(`cv.seed`, default `base.seed`), read from `cv.folds_file` (a `video,fold` CSV), or with
`cv.source: official` the data set's own parts (fold 0 tests on its test part, fold 1 on its
training part)."""

from vidmem.core.cli import run_stage, stage_parser
from vidmem.core.files import write_json
from vidmem.data.dataset import open_dataset
from vidmem.learn.crossval import kfold_splits, official_fold_parts, read_fold_file


def main(args, params):
    config = params.cv
    folds, without_fold = [], []
    if config.folds:
        data = params.data
        used = open_dataset(data).used_videos(args.decode_report)
        videos, parts = used.videos, None
        if config.source == "official":
            parts = official_fold_parts(used.official, used.dataset, config.folds)
            videos = [v for part in parts for v in part]
        elif config.folds_file:
            parts, without_fold = read_fold_file(config.folds_file, videos, config.folds,
                                                 data.on_bad_input)
            videos = [v for v in videos if v not in set(without_fold)]
        folds = kfold_splits(videos, config.folds, config.seed, config.val_fraction, parts)
    source = config.folds_file or config.source
    write_json(args.out, {"folds": folds, "source": source,
                          "without_fold": without_fold} if folds else {"folds": []})
    print(f"cv_split: {config.folds} fold(s)" + (
        f" ({source if source != 'seeded' else f'seed {config.seed}'}), test parts of "
        f"{', '.join(str(len(f['test'])) for f in folds)} videos" if folds else
        " (cross-validation off: set cv.folds, e.g. [0,1,2,3,4])")
        + (f"; {len(without_fold)} video(s) have no fold in {config.folds_file} and are left "
           f"out, e.g. {without_fold[:3]}" if without_fold else ""))


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--decode-report", required=True, help="decode stage JSON report")
    parser.add_argument("--out", required=True, help="JSON file with each fold's id lists")
    run_stage(parser, main)
