"""Stage cv_summary: each chain and the fusion over the cross-validation folds: per-fold test
Spearman, mean and standard deviation, the pooled out-of-fold Spearman with its bootstrap 95% CI,
and paired per-fold differences (which chain wins in how many folds), as `metrics/cv.json`, with
a figure. With `cv.folds: []` it records that cross-validation is off."""

from itertools import combinations

import pandas as pd

from vidmem.core.cli import run_stage, stage_parser
from vidmem.core.files import read_json, write_json
from vidmem.learn.crossval import paired_difference, summarize_chain
from vidmem.learn.figures import folds_figure


def main(args, params):
    folds = read_json(args.folds)["folds"]
    names = list(params.chains)
    config = params.evaluate
    summary = {"folds": len(folds),
               "target": params.target}
    per_fold = {}
    if folds:
        chains = {name: [f"{args.predictions}/{name}/{k}.csv" for k in range(len(folds))]
                  for name in names}
        if len(names) > 1:
            chains["fusion"] = [f"{args.fused}/{k}.csv" for k in range(len(folds))]
        for name, paths in chains.items():
            tests = [(t := pd.read_csv(path))[t.split == "test"] for path in paths]
            summary[name] = summarize_chain([t.true.to_numpy() for t in tests],
                                            [t.predicted.to_numpy() for t in tests],
                                            config.bootstrap_resamples, config.seed)
            per_fold[name] = summary[name]["folds"]
        summary["paired"] = {f"{a}_vs_{b}": paired_difference(per_fold[a], per_fold[b])
                             for a, b in combinations(list(chains)[::-1], 2)}
    write_json(args.metrics, summary)
    folds_figure(per_fold, args.figure)
    for name, scores in per_fold.items():
        row = summary[name]
        print(f"CV {name}: mean {number(row['mean'])} ± {number(row['sd'])} over {len(scores)} "
              f"folds, pooled {number(row['pooled_spearman'])} [{number(row['pooled_ci95_low'])}, "
              f"{number(row['pooled_ci95_high'])}]")
    for pair, diff in summary.get("paired", {}).items():
        print(f"CV {pair}: {number(diff['mean'])} (wins {diff['wins']} of {diff['folds']} folds)")


def number(value) -> str:
    """A metric for the log: 3 decimals, or n/a (a fold with all-tied predictions has none)."""
    return "n/a" if value is None or value != value else f"{value:.3f}"


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--folds", required=True, help="cv_split stage JSON")
    parser.add_argument("--predictions", required=True,
                        help="folder of the cv_train stages' <chain>/<fold>.csv")
    parser.add_argument("--fused", required=True, help="folder of cv_fusion CSVs")
    parser.add_argument("--metrics", required=True, help="JSON metrics file to write")
    parser.add_argument("--figure", required=True, help="PNG of Spearman per fold")
    run_stage(parser, main)
