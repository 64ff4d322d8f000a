"""One chain's head fitted on a split: the reference LSTM (per epoch) or a scikit-learn head on
mean-pooled features (per regularisation step), chosen on the split's validation part only.
The train stage and the cross-validation stage both fit through `fit_chain`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vidmem.heads import design_matrix, fit_head, head_checkpoint, is_sparse, pooled_rows
from vidmem.params import TrainConfig
from vidmem.training import train_model


@dataclass
class ChainFit:
    checkpoint: dict[str, Any]
    history: pd.DataFrame  # per step: epoch, train_loss, val_loss, val_spearman (+ strength)
    best_step: int  # the LSTM's best epoch, or the index (from 1) of the strength chosen
    metrics: dict[str, Any]
    summary: str  # one line for the log


def fit_chain(head: str, config: TrainConfig, features: Any, targets: np.ndarray,
              index: dict[str, np.ndarray], progress: bool = True) -> ChainFit:
    """Fit `head` on the rows `index["train"]`, choosing on `index["val"]`; the test rows are
    never read."""
    if head == "lstm":
        result = train_model(features, targets, index["train"], index["val"], config,
                             progress=progress)
        history = result.history
        metrics = {"best_epoch": result.best_epoch,
                   "best_val_spearman": round(result.best_val_spearman, 6),
                   "final_train_loss": float(f"{history.train_loss.iloc[-1]:.6g}")}
        return ChainFit(result.checkpoint, history, result.best_epoch, metrics,
                        f"best epoch {result.best_epoch}, val Spearman "
                        f"{result.best_val_spearman:.4f} (trained on "
                        f"{result.checkpoint['trained_on']})")
    # The per-epoch plots become per-step plots of the regularisation grid (step k = the k-th
    # strength tried, in increasing order), so `dvc plots show` shows how the choice was made.
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
    return ChainFit(checkpoint, history, best_step, metrics,
                    f"{head}, strength {fitted.strength}, val Spearman {fitted.val_spearman:.4f}")
