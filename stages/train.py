"""Stage train: fit one backend's head (`backend.<name>.head`: the LSTM by default, or ridge /
SVR on mean-pooled features), chosen on the validation split (best epoch, or best strength)."""

import pandas as pd

from vidmem.cli import run_stage, stage_parser
from vidmem.concatenated import load_concat
from vidmem.figures import training_figures
from vidmem.files import read_json, write_csv, write_json
from vidmem.groundtruth import read_ground_truth
from vidmem.heads import (
    design_matrix,
    fit_head,
    head_checkpoint,
    head_of,
    is_sparse,
    pooled_rows,
)
from vidmem.params import DataConfig, TrainConfig
from vidmem.training import save_checkpoint, split_indices, train_model


def train_lstm(args, config, features, targets, index):
    result = train_model(features, targets, index["train"], index["val"], config,
                         progress=not args.no_progress)
    history = result.history
    metrics = {"best_epoch": result.best_epoch,
               "best_val_spearman": round(result.best_val_spearman, 6),
               "final_train_loss": float(f"{history.train_loss.iloc[-1]:.6g}")}
    print(f"train {args.backend}: best epoch {result.best_epoch}, val Spearman "
          f"{result.best_val_spearman:.4f} (trained on {result.checkpoint['trained_on']})")
    return result.checkpoint, history, result.best_epoch, metrics


def train_sklearn(args, head, config, features, targets, index):
    """Ridge or SVR on mean-pooled features. The per-epoch plots become per-step plots of the
    regularisation grid (step k = the k-th strength tried, in increasing order: ridge's alpha
    from weak to strong regularisation, SVR's C from strong to weak), so `dvc plots show` shows
    how the choice was made."""
    pooled = {part: pooled_rows(features, index[part]) for part in ("train", "val")}
    as_sparse = is_sparse(pooled["train"])
    x = {part: design_matrix(rows, as_sparse) for part, rows in pooled.items()}
    fitted = fit_head(head, x["train"], targets[index["train"]], x["val"], targets[index["val"]])
    grid = pd.DataFrame(fitted.grid)
    history = pd.DataFrame({"epoch": range(1, len(grid) + 1), "strength": grid.strength,
                            "train_loss": grid.train_mse, "val_loss": grid.val_mse,
                            "val_spearman": grid.val_spearman})
    best_step = int(grid.index[grid.strength == fitted.strength][0]) + 1
    checkpoint = head_checkpoint(fitted, int(features.shape[2]), config.target, as_sparse)
    metrics = {"best_epoch": best_step, "strength": fitted.strength,
               "best_val_spearman": round(fitted.val_spearman, 6),
               "final_train_loss": float(f"{grid.train_mse.iloc[best_step - 1]:.6g}")}
    print(f"train {args.backend}: {head}, {'alpha' if head == 'ridge' else 'C'} "
          f"{fitted.strength}, val Spearman {fitted.val_spearman:.4f}")
    return checkpoint, history, best_step, metrics


def main(args, params):
    config = TrainConfig.from_params(params)
    data = DataConfig.from_params(params)
    head = head_of(params, args.backend)
    features, videos = load_concat(args.features)
    split = read_json(args.split)
    targets = read_ground_truth(data.ground_truth, data.on_bad_input).scores(videos, config.target)
    index = split_indices(videos, split)
    if head == "lstm":
        checkpoint, history, best, metrics = train_lstm(args, config, features, targets, index)
    else:
        checkpoint, history, best, metrics = train_sklearn(args, head, config, features, targets,
                                                           index)
    checkpoint["backend"] = args.backend
    checkpoint["head"] = head
    save_checkpoint(checkpoint, args.model)
    write_csv(f"{args.plots}/train_loss.csv", history[["epoch", "train_loss", "val_loss"]])
    write_csv(f"{args.plots}/val_spearman.csv", history[["epoch", "val_spearman"]])
    training_figures(history, best, f"{args.backend} ({head})", f"{args.plots}/loss.png",
                     f"{args.plots}/val_spearman.png",
                     step="epoch" if head == "lstm" else "regularisation step")
    write_json(args.metrics, {"head": head, **metrics, "n_train": len(index["train"]),
                              "n_val": len(index["val"])})


if __name__ == "__main__":
    parser = stage_parser(__doc__, backend=True)
    parser.add_argument("--features", required=True, help="concat stage output folder")
    parser.add_argument("--split", required=True, help="split stage JSON")
    parser.add_argument("--model", required=True, help="checkpoint file to write")
    parser.add_argument("--metrics", required=True, help="JSON metrics file to write")
    parser.add_argument("--plots", required=True,
                        help="folder for the per-epoch CSV plots and their PNG figures")
    run_stage(parser, main)
