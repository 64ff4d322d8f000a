"""Stage cv_fusion: late fusion on one cross-validation fold, weights fit on that fold's
validation predictions only (vidmem.learn.fusion), applied to its test videos."""

from vidmem.core.cli import run_stage, stage_parser
from vidmem.core.files import write_csv, write_json
from vidmem.learn.fusion import fuse_split_table, read_split_predictions


def main(args, params):
    names = list(params.chains)
    table, random_weights = read_split_predictions(
        {name: f"{args.predictions}/{name}/{args.fold}.csv" for name in names})
    fusion, test = fuse_split_table(table, names)
    write_csv(args.out, test[["split", "video", "true", "predicted"]])
    write_json(args.report, {"fold": args.fold, "fit_on": "val",
                             "weights": {n: round(w, 4) for n, w in fusion.weights.items()},
                             "val_spearman": round(fusion.val_spearman, 6),
                             "random_weights": any(random_weights[n] for n, w in
                                                   fusion.weights.items() if w > 0)})
    print(f"cv_fusion fold {args.fold}: weights " +
          ", ".join(f"{n} {w:.2f}" for n, w in fusion.weights.items()))


if __name__ == "__main__":
    parser = stage_parser(__doc__, fold=True)
    parser.add_argument("--predictions", required=True,
                        help="folder of the cv_train stages' <chain>/<fold>.csv")
    parser.add_argument("--out", required=True, help="CSV of the fold's fused test scores")
    parser.add_argument("--report", required=True, help="JSON of the fold's fusion weights")
    run_stage(parser, main)
