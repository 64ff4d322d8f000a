"""Heads, found by name in one registry (like backends): the reference LSTM, and ridge, RBF SVR
and MLP on mean-pooled features. A head fits a chain on a split (training rows, chosen on the
validation rows only; the test rows are never read) into a checkpoint, a per-step history and
metrics, and rebuilds a scorer from a checkpoint. Stages hold no head branches: the train and
cross-validation stages call `create_head(name).fit`, evaluate and predict `load_scorer`.

    @register_head("my_head")
    class MyHead(Head): ...          # then `chains: {<c>: {backend: <b>, head: my_head}}`

Each head owns its settings: the head stage writes `{"head": name, "settings": ...}` from
params.yaml (`head_settings`) into data/heads/<chain>.json, and train / cv_train build the head
from that file (`head_from_file`), so a chain depends on its own head's settings only.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vidmem.core.errors import DataError, ParamsError
from vidmem.core.files import read_json
from vidmem.core.params import (
    ChainConfig,
    LSTMSettings,
    Params,
    TrainConfig,
    as_choice,
    as_float_list,
)
from vidmem.core.registry import Registry, is_import_path
from vidmem.learn.heads import (
    GRID_MODELS,
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
    # Per step (the head's `step` column: `epoch`, or a grid's `candidate`): train_loss,
    # val_loss, val_spearman (+ strength).
    history: pd.DataFrame
    best_step: int  # the LSTM's best epoch, or the index (from 1) of the grid candidate chosen
    metrics: dict[str, Any]
    summary: str  # one line for the log
    warnings: list[str] = field(default_factory=list)  # printed by the stage, e.g. a grid edge


StepLogger = Callable[[dict[str, float]], None]


class Head:
    """One kind of head. `step` names one step of its history: its column there, the x axis of
    its plots, and its metric `best_<step>` (the LSTM's epochs; a grid's candidates).
    `settings` are the head's own (JSON-able, as `settings_from_params` reads them); None: the
    head takes what it needs from the config handed to `fit` (tests, benchmarks)."""

    name: str
    step: str

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        self.settings = settings

    def settings_from_params(self, params: Params) -> dict[str, Any]:
        """This head's settings from params.yaml (what the head stage writes)."""
        return {}

    def fit(self, config: ChainConfig | TrainConfig, features: Any, targets: np.ndarray,
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


# Heads by name: `chains.<chain>.head`. No facts beyond the name (every head fits and scores the
# same way); the factory builds a fresh Head from its settings (or None).
HEADS: Registry[None] = Registry("head")


def register_head(name: str) -> Callable[[Callable[[], Head]], Callable[[], Head]]:
    return HEADS.register(name, None)


def list_heads() -> list[str]:
    return HEADS.names()


def create_head(name: str, settings: dict[str, Any] | None = None) -> Head:
    """A registered head, or a `package.module:ClassName` head (a Head subclass) by its path;
    call this only with a name params.yaml gave (a checkpoint never chooses what to import)."""
    head = HEADS.resolve(name, Head)(settings)
    head.name = name  # what its checkpoints record, so that evaluate and predict can check it
    return head


def head_of(params: Params, chain: str) -> str:
    """`chains.<chain>.head`: lstm, another registered head, or a head's import path."""
    name = params.chain_spec(chain).head
    if is_import_path(name):
        return name
    return as_choice(name, f"chains.{chain}.head", list_heads())


def imported_head(params: Params, chain: str) -> Head | None:
    """The head params.yaml names for `chain` by its import path (a head of your own), built;
    None for a registered head, which a checkpoint may name itself (`load_scorer`)."""
    name = params.chain_spec(chain).head
    return create_head(name) if name not in HEADS else None


def head_settings(params: Params, chain: str) -> dict[str, Any]:
    """What the head stage writes for `chain`: its head and that head's settings."""
    name = head_of(params, chain)
    return {"head": name, "settings": create_head(name).settings_from_params(params)}


def head_from_file(path: str | os.PathLike) -> Head:
    """The head a head stage's file names, built from the settings it holds (checked)."""
    spec = read_json(path)
    if not isinstance(spec, dict) or set(spec) != {"head", "settings"} \
            or not isinstance(spec["settings"], dict):
        raise DataError(f"{path}: expected {{\"head\": name, \"settings\": {{...}}}} (the head "
                        "stage's output); re-run `dvc repro`")
    try:
        return create_head(spec["head"], spec["settings"])
    except ParamsError as exc:
        raise DataError(f"{path}: {exc}; re-run `dvc repro` to rewrite it from "
                        "params.yaml") from exc


@register_head("lstm")
class LSTMHead(Head):
    """The reference LSTM v2.1 (vidmem.learn.training), best epoch by validation Spearman."""

    name, step = "lstm", "epoch"

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        super().__init__(settings)
        self.lstm = None if settings is None else LSTMSettings.from_values(settings)

    def settings_from_params(self, params: Params) -> dict[str, Any]:
        return dataclasses.asdict(params.lstm)

    def fit(self, config: ChainConfig | TrainConfig, features: Any, targets: np.ndarray,
            index: dict[str, np.ndarray], progress: bool = True,
            on_step: StepLogger | None = None) -> ChainFit:
        if self.lstm is not None:
            config = TrainConfig.of(self.lstm, config)
        elif not isinstance(config, TrainConfig):
            raise TypeError("an LSTM head without settings needs a TrainConfig")
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

    step = "candidate"  # the k-th strength of the grid, not an epoch: nothing is iterated

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        super().__init__(settings)
        name = self.name
        settings = self.settings_from_params(None) if settings is None else settings
        if set(settings) != {"grid"}:
            raise ParamsError(f"{name} head settings: expected {{'grid': [...]}}, "
                              f"got keys {sorted(settings)}")
        self.grid = as_float_list(settings["grid"], f"{name} grid")
        if not self.grid or min(self.grid) <= 0:
            raise ParamsError(f"{name} head settings: the grid must list strengths > 0, "
                              f"got {self.grid}")

    def settings_from_params(self, params: Params | None) -> dict[str, Any]:
        # The grid is the head's own (vidmem.learn.heads.GRID_MODELS), not a params.yaml key:
        # the same whatever params say (None: the defaults a head built without settings uses).
        return {"grid": list(GRID_MODELS[self.name].grid)}

    def fit(self, config: ChainConfig | TrainConfig, features: Any, targets: np.ndarray,
            index: dict[str, np.ndarray], progress: bool = True,
            on_step: StepLogger | None = None) -> ChainFit:
        # Step k of the history is the k-th strength tried, in the grid's order.
        pooled = {part: pooled_rows(features, index[part]) for part in ("train", "val")}
        as_sparse = is_sparse(pooled["train"])
        x = {part: design_matrix(rows, as_sparse) for part, rows in pooled.items()}
        fitted = fit_head(self.name, x["train"], targets[index["train"]], x["val"],
                          targets[index["val"]], grid=self.grid)
        grid = pd.DataFrame(fitted.grid)
        history = pd.DataFrame({self.step: range(1, len(grid) + 1), "strength": grid.strength,
                                "train_loss": grid.train_mse, "val_loss": grid.val_mse,
                                "val_spearman": grid.val_spearman})
        best_step = int(grid.index[grid.strength == fitted.strength][0]) + 1
        for row in history.to_dict("records"):  # the grid is fit at once; logged after
            if on_step is not None:
                on_step(row)
        checkpoint = head_checkpoint(fitted, int(features.shape[2]), config.target, as_sparse)
        # A choice at the weakest or strongest strength tried may be cut off by the grid: the
        # best setting can lie beyond it, so it is reported (metric, warning), never hidden.
        at_edge = len(self.grid) > 1 and fitted.strength in (min(self.grid), max(self.grid))
        metrics = {f"best_{self.step}": best_step, "strength": fitted.strength,
                   "at_grid_edge": at_edge,
                   "best_val_spearman": round(fitted.val_spearman, 6),
                   "final_train_loss": float(f"{grid.train_mse.iloc[best_step - 1]:.6g}")}
        return ChainFit(checkpoint, history, best_step, metrics,
                        f"{self.name}, strength {fitted.strength}, val Spearman "
                        f"{fitted.val_spearman:.4f}", warnings=[
                            f"the chosen strength {fitted.strength} is at the edge of the "
                            f"{self.name} grid [{min(self.grid)}, {max(self.grid)}]: the best "
                            "setting may lie beyond it"] if at_edge else [])

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


@register_head("ridge")
class RidgeHead(SklearnHead):
    name = "ridge"


@register_head("svr")
class SVRHead(SklearnHead):
    name = "svr"


@register_head("mlp")
class MLPHead(SklearnHead):
    name = "mlp"


def load_scorer(path: str | os.PathLike, head: Head | None = None
                ) -> tuple[Scorer, dict[str, Any]]:
    """A function scoring `features[rows]` (rows None: all) with the checkpoint at `path`, and
    the checkpoint's values. Loading runs no code, and the checkpoint never chooses what to
    import: its head must be a registered one, or `head` (built from params.yaml), which it must
    match."""
    checkpoint = read_checkpoint(path)
    name = checkpoint.get("head", "lstm")
    if head is not None and head.name != name:
        raise DataError(f"{path} was trained with head {name!r}, not {head.name!r} as "
                        "params.yaml says now: retrain it (`dvc repro`)")
    if head is None:
        if name not in HEADS:
            raise DataError(f"{path}: its head {name!r} is not a registered head, and vidmem "
                            "imports no code a checkpoint names; a head of your own loads "
                            "when params.yaml names it (chains.<chain>.head)")
        head = create_head(name)
    return head.scorer(checkpoint, path), checkpoint
