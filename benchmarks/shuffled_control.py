"""Shuffled-label control on the demo run's features: train the reference model with train and
validation labels permuted (test labels true), for several seeds, and report test Spearman.

    python benchmarks/shuffled_control.py --seeds 1 2 3     # after `dvc repro`

Uses the pipeline's own outputs (data/concat/<backend>/, data/split.json) and params.yaml,
with only `train.shuffle_train_labels` and the training seed changed. A correct pipeline's test
Spearman then scatters around 0 across seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from vidmem.core.files import read_json
from vidmem.core.params import Params
from vidmem.data.dataset import open_dataset
from vidmem.learn.metrics import spearman
from vidmem.learn.training import predict_scores, split_indices, train_model
from vidmem.store.concatenated import load_concat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="efficientnet_lite0")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    params = Params.load()
    features, videos = load_concat(f"data/concat/{args.backend}")
    index = split_indices(videos, read_json("data/split.json"))
    base = params.train
    data = params.data
    targets = open_dataset(data).labels.scores(videos, base.target)
    results = []
    for seed in args.seeds:
        config = dataclasses.replace(base, seed=seed, shuffle_train_labels=True)
        result = train_model(features, targets, index["train"], index["val"], config)
        predicted = predict_scores(result.model, result.checkpoint, features, index["test"])
        results.append({"seed": seed, "best_epoch": result.best_epoch,
                        "test_spearman": round(spearman(targets[index["test"]], predicted), 4)})
        print(json.dumps(results[-1]), flush=True)
    values = [r["test_spearman"] for r in results]
    print(json.dumps({"mean_test_spearman": round(float(np.mean(values)), 4), "runs": results}))


if __name__ == "__main__":
    main()
