"""Stage train: fit one backend's head (`backend.<name>.head`: the LSTM by default, or ridge /
SVR on mean-pooled features), chosen on the validation split (best epoch, or best strength)."""

from pathlib import Path

from vidmem.captions import TEXT_MODEL
from vidmem.chain import create_head, head_of
from vidmem.cli import run_stage, stage_parser
from vidmem.concatenated import load_concat
from vidmem.figures import training_figures
from vidmem.files import read_json, write_csv, write_json
from vidmem.groundtruth import read_ground_truth
from vidmem.params import DataConfig, TrainConfig
from vidmem.training import save_checkpoint, split_indices


def main(args, params):
    config = TrainConfig.from_params(params)
    data = DataConfig.from_params(params)
    head = create_head(head_of(params, args.backend))
    features, videos = load_concat(args.features)
    split = read_json(args.split)
    targets = read_ground_truth(data.ground_truth, data.on_bad_input,
                                data.format).scores(videos, config.target)
    index = split_indices(videos, split)
    fit = head.fit(config, features, targets, index, progress=not args.no_progress)
    print(f"train {args.backend}: {fit.summary}")
    checkpoint, history, best, metrics = fit.checkpoint, fit.history, fit.best_step, fit.metrics
    checkpoint["backend"] = args.backend
    text_model = Path(args.extracted) / TEXT_MODEL
    if text_model.exists():  # a caption backend: how captions become features travels too
        checkpoint["text_features"] = read_json(text_model)
    save_checkpoint(checkpoint, args.model)
    write_csv(f"{args.plots}/train_loss.csv", history[["epoch", "train_loss", "val_loss"]])
    write_csv(f"{args.plots}/val_spearman.csv", history[["epoch", "val_spearman"]])
    training_figures(history, best, f"{args.backend} ({head.name})", f"{args.plots}/loss.png",
                     f"{args.plots}/val_spearman.png", step=head.step)
    write_json(args.metrics, {"head": head.name, **metrics, "n_train": len(index["train"]),
                              "n_val": len(index["val"])})


if __name__ == "__main__":
    parser = stage_parser(__doc__, backend=True)
    parser.add_argument("--features", required=True, help="concat stage output folder")
    parser.add_argument("--extracted", required=True,
                        help="extract stage output folder (a caption backend's text model)")
    parser.add_argument("--split", required=True, help="split stage JSON")
    parser.add_argument("--model", required=True, help="checkpoint file to write")
    parser.add_argument("--metrics", required=True, help="JSON metrics file to write")
    parser.add_argument("--plots", required=True,
                        help="folder for the per-epoch CSV plots and their PNG figures")
    run_stage(parser, main)
