"""A head and a data-set layout that live outside vidmem, named in params.yaml by import path
(`heads: {b: toyplugin:ToyHead}`, `data.format: toyplugin:ToyLayout`): what docs/contributing.md
shows, run through train, evaluate and predict by tests/test_plugins.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from vidmem.data.groundtruth import Layout
from vidmem.learn.chain import ChainFit, Head
from vidmem.learn.heads import pooled_rows
from vidmem.learn.metrics import spearman


class ToyLayout(Layout):
    """Labels from any CSV with `video` and `short-term_memorability` columns; no official
    parts, no captions."""

    def labels(self, path: Path) -> tuple[pd.DataFrame, None, list[str]]:
        return pd.read_csv(path)[["video", "short-term_memorability"]], None, []


class ToyHead(Head):
    """Least squares on mean-pooled features: nothing to choose, so one step."""

    step = "fit"

    def fit(self, config: Any, features: Any, targets: np.ndarray,
            index: dict[str, np.ndarray], progress: bool = True, on_step: Any = None) -> ChainFit:
        x = {part: pooled_rows(features, index[part]).astype(np.float64)
             for part in ("train", "val")}
        design = np.c_[x["train"], np.ones(len(x["train"]))]
        coef = np.linalg.lstsq(design, targets[index["train"]], rcond=None)[0]
        fitted = {part: x[part] @ coef[:-1] + coef[-1] for part in x}
        row = {self.step: 1,
               "train_loss": float(np.mean((fitted["train"] - targets[index["train"]]) ** 2)),
               "val_loss": float(np.mean((fitted["val"] - targets[index["val"]]) ** 2)),
               "val_spearman": spearman(targets[index["val"]], fitted["val"])}
        if on_step is not None:
            on_step(row)
        checkpoint = {"head": self.name, "coef": torch.from_numpy(coef),
                      "input_size": int(features.shape[2]), "target": config.target}
        metrics = {"best_fit": 1, "best_val_spearman": round(row["val_spearman"], 6),
                   "final_train_loss": row["train_loss"]}
        return ChainFit(checkpoint, pd.DataFrame([row]), 1, metrics,
                        f"least squares, val Spearman {row['val_spearman']:.4f}")

    def scorer(self, checkpoint: dict[str, Any], path: str | os.PathLike) -> Any:
        coef = checkpoint["coef"].numpy()

        def score(features: Any, rows: np.ndarray | None = None) -> np.ndarray:
            rows = np.arange(len(features)) if rows is None else np.asarray(rows)
            pooled = pooled_rows(features, rows).astype(np.float64)
            return (pooled @ coef[:-1] + coef[-1]).astype(np.float32)

        return score

    def describe(self, checkpoint: dict[str, Any]) -> str:
        return "least squares"
