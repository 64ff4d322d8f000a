"""Stage cv_train: one backend's chain on one cross-validation fold: its head fit on the fold's
training part and chosen on its validation part, then its validation and test predictions.
A backend that fits on data (TF-IDF captions) is refit on the fold's training captions, so no
fold's vocabulary sees its test captions."""

import sys

import pandas as pd

from vidmem.backends import backend_config
from vidmem.core.cli import run_stage, stage_parser
from vidmem.core.files import read_json, write_csv, write_json
from vidmem.data.dataset import open_dataset
from vidmem.learn.chain import head_from_file
from vidmem.learn.metrics import spearman
from vidmem.learn.training import split_indices
from vidmem.store.concatenated import load_concat


def main(args, params):
    config = params.chain
    data = params.data
    head = head_from_file(args.head)
    chain = backend_config(params, args.backend)
    fold = read_json(args.folds)["folds"][args.fold]
    truth = open_dataset(data).labels
    info = read_json(args.features_info)
    if chain.facts.fits_on_split:
        # Refit on this fold's training part, in memory; only such a backend is built (a frame
        # backend would load its network for nothing: its features are concat's, any fold).
        backend = chain.build(params.cache.dir)
        backend.use_dataset(open_dataset(data), None)
        backend.fit(fold["train"])
        videos = [v for part in ("train", "val", "test") for v in fold[part]]
        features = backend.features_of(videos)
        info = {**info, "feature_dim": backend.feature_dim}
    else:
        features, videos = load_concat(args.features)
    targets = truth.scores(videos, config.target)
    index = split_indices(videos, fold)
    fit = head.fit(config, features, targets, index, progress=False)
    # The fitted values score as their saved and reloaded checkpoint would (the contract test
    # of every head), so nothing is written to read it back.
    score = head.scorer(fit.checkpoint, f"{args.backend}, fold {args.fold}")
    rows = pd.concat([pd.DataFrame({"split": part, "video": [videos[i] for i in index[part]],
                                    "true": targets[index[part]],
                                    "predicted": score(features, index[part]),
                                    "random_weights": info["random_weights"]})
                      for part in ("val", "test")])
    if hasattr(features, "close"):  # a concat output's open file
        features.close()
    write_csv(args.out, rows)
    test = rows[rows.split == "test"]
    write_json(args.report, {"backend": args.backend, "fold": args.fold, "head": head.name,
                             **fit.metrics, "feature_dim": int(info["feature_dim"]),
                             "n_train": len(index["train"]), "n_val": len(index["val"]),
                             "n_test": len(index["test"]),
                             "test_spearman": spearman(test.true.to_numpy(),
                                                       test.predicted.to_numpy())})
    print(f"cv_train {args.backend} fold {args.fold}: {fit.summary}")
    for warning in fit.warnings:
        print(f"WARNING: cv_train {args.backend} fold {args.fold}: {warning}", file=sys.stderr)


if __name__ == "__main__":
    parser = stage_parser(__doc__, backend=True, fold=True)
    parser.add_argument("--head", required=True, help="head stage JSON: the head and its settings")
    parser.add_argument("--folds", required=True, help="cv_split stage JSON")
    parser.add_argument("--features", required=True, help="concat stage output folder")
    parser.add_argument("--features-info", required=True, help="extract stage info.json")
    parser.add_argument("--out", required=True, help="CSV of split, video, true, predicted")
    parser.add_argument("--report", required=True, help="JSON of the chain's fit on this fold")
    run_stage(parser, main)
