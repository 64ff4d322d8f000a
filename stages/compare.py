"""Stage compare: test Spearman of every chain side by side, with CIs (one figure, one table),
and the headline metrics file: each chain's and the fusion's test Spearman, first in
`dvc exp show` (the stage is first in dvc.yaml, so its metrics lead the table)."""

from vidmem.core.cli import run_stage, stage_parser
from vidmem.core.files import read_json, write_json
from vidmem.learn.figures import comparison_figure


def main(args, params):
    rows = []
    names = list(params.chains)
    # Fusion of one chain is that chain; with several, it is the row to beat.
    for name in names + (["fusion"] if len(names) > 1 else []):
        metrics = read_json(f"{args.metrics}/{name}.json")
        rows.append({"name": name, **{key: metrics[key] for key in (
            "spearman", "spearman_ci95_low", "spearman_ci95_high", "pearson", "mse", "n")},
            "random_weights": metrics.get("random_weights", False)})
    comparison_figure(rows, args.figure)
    write_json(args.table, rows)
    write_json(args.headline, {"test_spearman": {row["name"]: round(row["spearman"], 4)
                                                 for row in rows}})
    for row in rows:
        print(f"{row['name']}: test Spearman {row['spearman']:.3f} "
              f"[{row['spearman_ci95_low']:.3f}, {row['spearman_ci95_high']:.3f}]")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--metrics", required=True, help="folder of the evaluate stages' JSON")
    parser.add_argument("--figure", required=True, help="PNG to write")
    parser.add_argument("--table", required=True, help="JSON list of the rows plotted")
    parser.add_argument("--headline", required=True,
                        help="JSON metrics: {test_spearman: {chain: value}}")
    run_stage(parser, main)
