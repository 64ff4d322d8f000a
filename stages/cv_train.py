"""Stage cv_train: one chain on every cross-validation fold: on each, its head fit on the fold's
training part and chosen on its validation part, then its validation and test predictions.
A backend that fits on data (TF-IDF captions) is refit on each fold's training captions, so no
fold's vocabulary sees its test captions. Writes `<out>/<fold>.csv` and `<out>/<fold>.json` per
fold and `<out>/chain.json`; with `cv.folds: []` only chain.json, saying cross-validation is off.
(One stage per chain, not per chain and fold: DVC's matrix would know a chain by its name only,
and could not depend on its backend's features alone.)"""

import sys

import pandas as pd

from vidmem.backends import backend_config
from vidmem.core.cli import run_stage, stage_parser
from vidmem.core.files import atomic_dir, read_json, write_csv, write_json
from vidmem.data.dataset import open_dataset
from vidmem.learn.chain import head_from_file
from vidmem.learn.metrics import spearman
from vidmem.learn.training import split_indices
from vidmem.store.concatenated import load_concat


def main(args, params):
    folds = read_json(args.folds)["folds"]
    head = head_from_file(args.head)
    with atomic_dir(args.out) as out:
        write_json(out / "chain.json", {"chain": args.chain, "backend": args.backend,
                                        "head": head.name, "folds": len(folds)})
        if not folds:
            print(f"cv_train {args.chain}: cross-validation off (cv.folds: [])")
            return
        config, dataset = params.chain, open_dataset(params.data)
        truth, info = dataset.labels, read_json(args.features_info)
        backend_cfg = backend_config(params, args.backend)
        backend = concat = None
        if backend_cfg.facts.fits_on_split:
            # Built once (the captions read once, a sentence part's model loaded once) and refit
            # in memory on each fold's training part; only such a backend is built (a frame
            # backend would load its network for nothing: its features are concat's, any fold).
            backend = backend_cfg.build(params.cache.dir)
            backend.use_dataset(dataset, None)
        else:
            concat = load_concat(args.features)
        for k, fold in enumerate(folds):
            if backend is not None:
                backend.fit(fold["train"])  # replaces the previous fold's fitted state
                videos = [v for part in ("train", "val", "test") for v in fold[part]]
                features = backend.features_of(videos)
                feature_dim = backend.feature_dim
            else:
                features, videos = concat
                feature_dim = info["feature_dim"]
            targets = truth.scores(videos, config.target)
            index = split_indices(videos, fold)
            fit = head.fit(config, features, targets, index, progress=False)
            # The fitted values score as their saved and reloaded checkpoint would (the
            # contract test of every head), so nothing is written to read it back.
            score = head.scorer(fit.checkpoint, f"{args.chain}, fold {k}")
            rows = pd.concat([pd.DataFrame({"split": part,
                                            "video": [videos[i] for i in index[part]],
                                            "true": targets[index[part]],
                                            "predicted": score(features, index[part]),
                                            "random_weights": info["random_weights"]})
                              for part in ("val", "test")])
            write_csv(out / f"{k}.csv", rows)
            test = rows[rows.split == "test"]
            write_json(out / f"{k}.json", {
                "chain": args.chain, "backend": args.backend, "fold": k, "head": head.name,
                **fit.metrics, "feature_dim": int(feature_dim),
                "n_train": len(index["train"]), "n_val": len(index["val"]),
                "n_test": len(index["test"]),
                "test_spearman": spearman(test.true.to_numpy(), test.predicted.to_numpy())})
            print(f"cv_train {args.chain} fold {k}: {fit.summary}")
            for warning in fit.warnings:
                print(f"WARNING: cv_train {args.chain} fold {k}: {warning}", file=sys.stderr)
        if concat is not None:
            concat[0].close()  # the concat output's open file


if __name__ == "__main__":
    parser = stage_parser(__doc__, chain=True)
    parser.add_argument("--backend", required=True, help="the chain's backend (chains.<name>.backend)")
    parser.add_argument("--head", required=True, help="head stage JSON: the head and its settings")
    parser.add_argument("--folds", required=True, help="cv_split stage JSON")
    parser.add_argument("--features", required=True, help="the backend's concat stage output folder")
    parser.add_argument("--features-info", required=True, help="the backend's extract info.json")
    parser.add_argument("--out", required=True,
                        help="folder of <fold>.csv (split, video, true, predicted), <fold>.json "
                             "(the fit's report) and chain.json")
    run_stage(parser, main)
