"""Stage train: fit one chain's head (`chains.<name>.head`, with the settings the head stage resolved:
the LSTM, or ridge / SVR / MLP on mean-pooled features), chosen on the validation split (best
epoch, or best strength).
Per-step loss and validation Spearman are logged with DVCLive as they come (`dvc exp show` and
`dvc plots` read them); its summary holds the chosen step's metrics."""

import sys

from dvclive import Live

from vidmem.backends.base import read_state
from vidmem.core.cli import run_stage, stage_parser
from vidmem.core.files import read_json
from vidmem.data.dataset import open_dataset
from vidmem.learn.chain import head_from_file
from vidmem.learn.figures import training_figures
from vidmem.learn.training import save_checkpoint, split_indices
from vidmem.store.concatenated import load_concat


def main(args, params):
    config = params.chain
    head = head_from_file(args.head)
    features, videos = load_concat(args.features)
    split = read_json(args.split)
    targets = open_dataset(params.data).labels.scores(videos, config.target)
    index = split_indices(videos, split)
    with Live(args.live, dvcyaml=None, save_dvc_exp=False) as live:
        def log_step(row: dict[str, float]) -> None:
            live.step = int(row[head.step])  # steps count from 1: epochs, or grid candidates
            for key in ("train_loss", "val_loss", "val_spearman"):
                live.log_metric(key, float(row[key]))
            live.next_step()

        fit = head.fit(config, features, targets, index, progress=not args.no_progress,
                       on_step=log_step)
        # The summary (what `dvc exp show` lists) is the chosen step, not the last one.
        live.summary = {"head": head.name, **fit.metrics, "n_train": len(index["train"]),
                        "n_val": len(index["val"])}
        live.step = int(fit.history[head.step].iloc[-1])  # the summary's step: the last one run
    print(f"train {args.chain}: {fit.summary}")
    for warning in fit.warnings:
        print(f"WARNING: train {args.chain}: {warning}", file=sys.stderr)
    checkpoint, history, best = fit.checkpoint, fit.history, fit.best_step
    checkpoint["backend"], checkpoint["chain"] = args.backend, args.chain
    state = read_state(args.extracted)
    if state is not None:  # what the backend fit (a TF-IDF) travels with the head trained on it
        checkpoint["backend_state"] = state
    save_checkpoint(checkpoint, args.model)
    training_figures(history, best, f"{args.chain} ({head.name})", f"{args.plots}/loss.png",
                     f"{args.plots}/val_spearman.png", step=head.step)


if __name__ == "__main__":
    parser = stage_parser(__doc__, chain=True)
    parser.add_argument("--backend", required=True, help="the chain's backend (chains.<name>.backend)")
    parser.add_argument("--head", required=True, help="head stage JSON: the head and its settings")
    parser.add_argument("--features", required=True, help="concat stage output folder")
    parser.add_argument("--extracted", required=True,
                        help="extract stage output folder (the backend's fitted state, if any)")
    parser.add_argument("--split", required=True, help="split stage JSON")
    parser.add_argument("--model", required=True, help="checkpoint file to write")
    parser.add_argument("--live", required=True,
                        help="DVCLive folder: metrics.json and per-step plots/metrics/*.tsv")
    parser.add_argument("--plots", required=True, help="folder for the PNG figures")
    run_stage(parser, main)
