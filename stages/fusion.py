"""Stage fusion: late fusion of every chain's predictions, weights fit on the validation split
(ensemble selection, vidmem.learn.fusion); test Spearman with its bootstrap CI, like evaluate."""

import pandas as pd

from vidmem.core.cli import run_stage, stage_parser
from vidmem.core.files import write_csv, write_json
from vidmem.learn.figures import prediction_figure
from vidmem.learn.fusion import fuse_split_table, read_split_predictions
from vidmem.learn.metrics import regression_metrics


def main(args, params):
    config = params.evaluate
    names = list(params.chains)
    table, random_weights = read_split_predictions(
        {name: f"{args.predictions}/{name}.csv" for name in names})
    fusion, test = fuse_split_table(table, names)
    target = params.target
    predicted = test.predicted.to_numpy()
    metrics = regression_metrics(test.true.to_numpy(), predicted, config.bootstrap_resamples,
                                 config.seed)
    metrics.update({"head": "fusion", "fit_on": "val",
                    "weights": {n: round(w, 4) for n, w in fusion.weights.items()},
                    "val_spearman": round(fusion.val_spearman, 6),
                    "random_weights": any(random_weights[n] for n, w in fusion.weights.items()
                                          if w > 0)})
    write_json(args.metrics, metrics)
    write_json(args.model, {**fusion.state(), "chains": names, "target": target})
    write_csv(args.table, pd.DataFrame({"video": test.video, "true": test.true,
                                        "predicted": predicted}))
    prediction_figure(test.true.to_numpy(), predicted, metrics, "fusion", args.figure)
    weights = ", ".join(f"{n} {w:.2f}" for n, w in fusion.weights.items())
    print(f"RESULT fusion: test Spearman {metrics['spearman']:.3f} [95% CI "
          f"{metrics['spearman_ci95_low']:.3f}, {metrics['spearman_ci95_high']:.3f}], "
          f"weights (fit on val) {weights}"
          + (" — RANDOM WEIGHTS in a member" if metrics["random_weights"] else ""))


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--predictions", required=True,
                        help="folder of the evaluate stages' <chain>.csv (val and test rows)")
    parser.add_argument("--metrics", required=True, help="JSON metrics file to write")
    parser.add_argument("--model", required=True,
                        help="JSON of the fitted fusion (weights, z-score statistics, line)")
    parser.add_argument("--table", required=True, help="CSV of video, true, predicted (test)")
    parser.add_argument("--figure", required=True, help="PNG of predicted vs true")
    run_stage(parser, main)
