"""Stage train: fit the LSTM on one backend's features; keep the best-validation-Spearman epoch."""

from vidmem.cli import run_stage, stage_parser
from vidmem.features import load_concat
from vidmem.figures import training_figures
from vidmem.files import read_json, write_csv, write_json
from vidmem.groundtruth import read_ground_truth
from vidmem.params import DataConfig, TrainConfig
from vidmem.training import save_checkpoint, split_indices, train_model


def main(args, params):
    config = TrainConfig.from_params(params)
    data = DataConfig.from_params(params)
    features, videos = load_concat(args.features)
    split = read_json(args.split)
    targets = read_ground_truth(data.ground_truth, data.on_bad_input).scores(videos, config.target)
    index = split_indices(videos, split)
    result = train_model(features, targets, index["train"], index["val"], config,
                         progress=not args.no_progress)
    result.checkpoint["backend"] = args.backend
    save_checkpoint(result.checkpoint, args.model)
    history = result.history
    write_csv(f"{args.plots}/train_loss.csv", history[["epoch", "train_loss", "val_loss"]])
    write_csv(f"{args.plots}/val_spearman.csv", history[["epoch", "val_spearman"]])
    training_figures(history, result.best_epoch, args.backend, f"{args.plots}/loss.png",
                     f"{args.plots}/val_spearman.png")
    write_json(args.metrics, {"best_epoch": result.best_epoch,
                              "best_val_spearman": round(result.best_val_spearman, 6),
                              "final_train_loss": float(f"{history.train_loss.iloc[-1]:.6g}"),
                              "n_train": len(index["train"]), "n_val": len(index["val"])})
    print(f"train {args.backend}: best epoch {result.best_epoch}, "
          f"val Spearman {result.best_val_spearman:.4f} (trained on {result.checkpoint['trained_on']})")


if __name__ == "__main__":
    parser = stage_parser(__doc__, backend=True)
    parser.add_argument("--features", required=True, help="concat stage output folder")
    parser.add_argument("--split", required=True, help="split stage JSON")
    parser.add_argument("--model", required=True, help="checkpoint file to write")
    parser.add_argument("--metrics", required=True, help="JSON metrics file to write")
    parser.add_argument("--plots", required=True,
                        help="folder for the per-epoch CSV plots and their PNG figures")
    run_stage(parser, main)
