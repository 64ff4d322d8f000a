"""Heads, found by name in one registry (like backends): the reference LSTM, and ridge, RBF SVR
and MLP on mean-pooled features. A head fits a chain on a split (training rows, chosen on the
validation rows only; the test rows are never read) into a checkpoint, a per-step history and
metrics, and rebuilds a scorer from a checkpoint. Stages hold no head branches: the train and
cross-validation stages call `create_head(name).fit`, evaluate and predict `load_scorer`.

    @register_head("my_head")
    class MyHead(Head): ...          # then `backend.<b>.head: my_head` in params.yaml
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vidmem.core.errors import DataError
from vidmem.core.params import Params, TrainConfig, as_choice
from vidmem.core.registry import Registry
from vidmem.learn.heads import (
    GRIDS,
    ArrayHead,
    Scorer,
    design_matrix,
    fit_head,
    head_checkpoint,
    is_sparse,
    pooled_rows,
)
from vidmem.learn.training import (
    check_features_fit,
    lstm_from_checkpoint,
    predict_scores,
    read_checkpoint,
    train_model,
)


@dataclass
class ChainFit:
    checkpoint: dict[str, Any]
    history: pd.DataFrame  # per step: epoch, train_loss, val_loss, val_spearman (+ strength)
    best_step: int  # the LSTM's best epoch, or the index (from 1) of the strength chosen
    metrics: dict[str, Any]
    summary: str  # one line for the log


StepLogger = Callable[[dict[str, float]], None]


class Head:
    """One kind of head. `step` names one step of its history (the x axis of its plots)."""

    name: str
    step: str

    def fit(self, config: TrainConfig, features: Any, targets: np.ndarray,
            index: dict[str, np.ndarray], progress: bool = True,
            on_step: StepLogger | None = None) -> ChainFit:
        """Fit on the train rows, choose on the validation rows; `on_step` gets each step's
        history row as soon as it is known (the train stage logs it with DVCLive)."""
        raise NotImplementedError

    def scorer(self, checkpoint: dict[str, Any], path: str | os.PathLike) -> Scorer:
        """A function scoring `features[rows]` (rows None: all) from the checkpoint's values."""
        raise NotImplementedError

    def describe(self, checkpoint: dict[str, Any]) -> str:
        """What was chosen, for the RESULT line."""
        raise NotImplementedError


# Heads by name: `backend.<name>.head`. No facts beyond the name (every head fits and scores
# the same way); the factory builds a fresh Head.
HEADS: Registry[None] = Registry("head")


def register_head(name: str) -> Callable[[Callable[[], Head]], Callable[[], Head]]:
    return HEADS.register(name, None)


def list_heads() -> list[str]:
    return HEADS.names()


def create_head(name: str) -> Head:
    if name not in HEADS:
        raise DataError(f"unknown head {name!r}: the registered heads are {list_heads()}")
    return HEADS.create(name)


def head_of(params: Params, backend: str) -> str:
    """`backend.<name>.head`: lstm (default) or another registered head."""
    return as_choice(params.backend_section(backend).get("head", "lstm"),
                     f"backend.{backend}.head", list_heads())


@register_head("lstm")
class LSTMHead(Head):
    """The reference LSTM v2.1 (vidmem.learn.training), best epoch by validation Spearman."""

    name, step = "lstm", "epoch"

    def fit(self, config: TrainConfig, features: Any, targets: np.ndarray,
            index: dict[str, np.ndarray], progress: bool = True,
            on_step: StepLogger | None = None) -> ChainFit:
        result = train_model(features, targets, index["train"], index["val"], config,
                             progress=progress, on_epoch=on_step)
        history = result.history
        metrics = {"best_epoch": result.best_epoch,
                   "best_val_spearman": round(result.best_val_spearman, 6),
                   "final_train_loss": float(f"{history.train_loss.iloc[-1]:.6g}")}
        return ChainFit({**result.checkpoint, "head": self.name}, history, result.best_epoch,
                        metrics, f"best epoch {result.best_epoch}, val Spearman "
                        f"{result.best_val_spearman:.4f} (trained on "
                        f"{result.checkpoint['trained_on']})")

    def scorer(self, checkpoint: dict[str, Any], path: str | os.PathLike) -> Scorer:
        model = lstm_from_checkpoint(checkpoint, path)
        return lambda features, rows=None: predict_scores(model, checkpoint, features, rows)

    def describe(self, checkpoint: dict[str, Any]) -> str:
        return f"best epoch {checkpoint['best_epoch']}"


class SklearnHead(Head):
    """Ridge, RBF SVR or MLP (scikit-learn) on mean-pooled features, strength chosen on
    validation; saved as plain arrays (vidmem.learn.heads.estimator_state), never pickled."""

    step = "regularisation step"

    def __init__(self, name: str) -> None:
        self.name = name

    def fit(self, config: TrainConfig, features: Any, targets: np.ndarray,
            index: dict[str, np.ndarray], progress: bool = True,
            on_step: StepLogger | None = None) -> ChainFit:
        # Step k of the history is the k-th strength tried, in the grid's order.
        pooled = {part: pooled_rows(features, index[part]) for part in ("train", "val")}
        as_sparse = is_sparse(pooled["train"])
        x = {part: design_matrix(rows, as_sparse) for part, rows in pooled.items()}
        fitted = fit_head(self.name, x["train"], targets[index["train"]], x["val"],
                          targets[index["val"]])
        grid = pd.DataFrame(fitted.grid)
        history = pd.DataFrame({"epoch": range(1, len(grid) + 1), "strength": grid.strength,
                                "train_loss": grid.train_mse, "val_loss": grid.val_mse,
                                "val_spearman": grid.val_spearman})
        best_step = int(grid.index[grid.strength == fitted.strength][0]) + 1
        for row in history.to_dict("records"):  # the grid is fit at once; logged after
            if on_step is not None:
                on_step(row)
        checkpoint = head_checkpoint(fitted, int(features.shape[2]), config.target, as_sparse)
        metrics = {"best_epoch": best_step, "strength": fitted.strength,
                   "best_val_spearman": round(fitted.val_spearman, 6),
                   "final_train_loss": float(f"{grid.train_mse.iloc[best_step - 1]:.6g}")}
        return ChainFit(checkpoint, history, best_step, metrics,
                        f"{self.name}, strength {fitted.strength}, val Spearman "
                        f"{fitted.val_spearman:.4f}")

    def scorer(self, checkpoint: dict[str, Any], path: str | os.PathLike) -> Scorer:
        if not isinstance(checkpoint.get("estimator"), dict):
            # Checkpoints before plain arrays held the estimator as pickled bytes: unpickling
            # them would run whatever code they name, so they are refused, never opened.
            raise DataError(f"checkpoint {path} stores its {checkpoint.get('head')} head as "
                            "pickled bytes, which would run code when loaded; vidmem never "
                            "unpickles. Retrain it (`dvc repro`) to save the head as plain arrays")
        estimator = ArrayHead(checkpoint["estimator"])

        def score(features: Any, rows: np.ndarray | None = None) -> np.ndarray:
            check_features_fit(features, checkpoint)
            rows = np.arange(len(features)) if rows is None else np.asarray(rows)
            x = design_matrix(pooled_rows(features, rows), checkpoint["sparse_input"])
            return np.asarray(estimator.predict(x), dtype=np.float32)

        return score

    def describe(self, checkpoint: dict[str, Any]) -> str:
        return f"strength {checkpoint['strength']}"


for _kind in GRIDS:
    register_head(_kind)(lambda kind=_kind: SklearnHead(kind))


def load_scorer(path: str | os.PathLike) -> tuple[Scorer, dict[str, Any]]:
    """A function scoring `features[rows]` (rows None: all) with the checkpoint at `path`,
    whichever registered head trained it, and the checkpoint's values. Loading runs no code."""
    checkpoint = read_checkpoint(path)
    return create_head(checkpoint.get("head", "lstm")).scorer(checkpoint, path), checkpoint
