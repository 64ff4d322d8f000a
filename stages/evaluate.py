"""Stage evaluate: Spearman (with bootstrap CI), Pearson and MSE on the test split, and the
validation and test predictions that the fusion stage combines."""

import pandas as pd

from vidmem.core.cli import run_stage, stage_parser
from vidmem.core.files import read_json, write_csv, write_json
from vidmem.data.dataset import open_dataset
from vidmem.learn.chain import head_from_file, load_scorer
from vidmem.learn.figures import prediction_figure
from vidmem.learn.metrics import regression_metrics
from vidmem.learn.training import split_indices
from vidmem.store.concatenated import load_concat


def main(args, params):
    config = params.evaluate
    data = params.data
    head = head_from_file(args.head)
    score, checkpoint = load_scorer(args.model, head)
    features, videos = load_concat(args.features)
    index = split_indices(videos, read_json(args.split))
    target = checkpoint["target"]
    truth = open_dataset(data).labels
    info = read_json(args.info)
    tables = {}
    for part in ("val", "test"):
        names = [videos[i] for i in index[part]]
        tables[part] = pd.DataFrame({"split": part, "video": names,
                                     "true": truth.scores(names, target),
                                     "predicted": score(features, index[part]),
                                     "random_weights": info["random_weights"]})
    true, predicted = tables["test"].true.to_numpy(), tables["test"].predicted.to_numpy()
    metrics = regression_metrics(true, predicted, config.bootstrap_resamples, config.seed)
    metrics.update({"target": target, "head": head.name, "random_weights": info["random_weights"],
                    "weights": info["weights"]})
    write_json(args.metrics, metrics)
    write_csv(args.predictions, tables["test"][["video", "true", "predicted"]])
    write_csv(args.split_predictions, pd.concat([tables["val"], tables["test"]]))
    prediction_figure(true, predicted, metrics, args.chain, args.figure)
    # The run's result in one line at the end of `dvc repro`, so nobody has to open JSON.
    print(f"RESULT {args.chain} ({target}): test Spearman {metrics['spearman']:.3f} "
          f"[95% CI {metrics['spearman_ci95_low']:.3f}, {metrics['spearman_ci95_high']:.3f}], "
          f"Pearson {metrics['pearson']:.3f}, MSE {metrics['mse']:.5f}, n {metrics['n']}, "
          f"head {head.name}, {head.describe(checkpoint)}"
          + (" — RANDOM WEIGHTS" if info["random_weights"] else ""))


if __name__ == "__main__":
    parser = stage_parser(__doc__, chain=True)
    parser.add_argument("--head", required=True, help="head stage JSON (the checkpoint's head)")
    parser.add_argument("--model", required=True, help="train stage checkpoint")
    parser.add_argument("--features", required=True, help="concat stage output folder")
    parser.add_argument("--info", required=True, help="extract stage info.json (weights label)")
    parser.add_argument("--split", required=True, help="split stage JSON")
    parser.add_argument("--metrics", required=True, help="JSON metrics file to write")
    parser.add_argument("--predictions", required=True,
                        help="CSV of video, true, predicted on the test split (plotted)")
    parser.add_argument("--split-predictions", required=True,
                        help="CSV of split, video, true, predicted for val and test (fusion)")
    parser.add_argument("--figure", required=True, help="PNG of predicted vs true")
    run_stage(parser, main)
