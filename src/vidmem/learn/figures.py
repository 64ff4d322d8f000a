"""The reference report's figures as PNG files, made by the stages: loss and validation
Spearman per epoch (train), predicted vs true on the test split (evaluate), and one comparison
across backends (compare).

They are declared as DVC image plots, so `dvc plots show` embeds them and `dvc plots diff`
shows two commits side by side, with no network. Output is deterministic: the Agg backend,
matplotlib's bundled DejaVu Sans, a fixed size and DPI, and no software or date metadata, so
the same numbers give the same bytes and DVC sees no change.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display, the same pixels everywhere

import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from vidmem.core.files import atomic_path  # noqa: E402

SIZE = (6.4, 4.0)  # inches; at DPI 100 a 640x400 image
DPI = 100
STYLE = {"font.family": "DejaVu Sans", "font.size": 10, "axes.grid": True, "grid.alpha": 0.3}


def _save(figure: plt.Figure, path: str | os.PathLike) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(figure)


def training_figures(history: pd.DataFrame, best_step: int, backend: str,
                     loss_path: str | os.PathLike, spearman_path: str | os.PathLike,
                     step: str = "epoch") -> None:
    """Train and validation loss per step; validation Spearman per step, the best one marked.
    `step` is the history's step column and the x axis: the LSTM's epochs, or the candidates
    (strengths) a grid head tried."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(figsize=SIZE)
        axes.plot(history[step], history.train_loss, label="train")
        axes.plot(history[step], history.val_loss, label="validation")
        axes.set(xlabel=step, ylabel="MSE loss", yscale="log",
                 title=f"{backend}: loss per {step}")
        axes.legend()
        _save(figure, loss_path)

        figure, axes = plt.subplots(figsize=SIZE)
        axes.plot(history[step], history.val_spearman, color="tab:green")
        best = history.loc[history[step] == best_step, "val_spearman"]
        if len(best):
            axes.axvline(best_step, color="grey", linestyle="--", linewidth=1)
            axes.plot([best_step], best, "o", color="tab:red",
                      label=f"best {step} {best_step}: {float(best.iloc[0]):.3f}")
            axes.legend(loc="lower right")
        axes.set(xlabel=step, ylabel="Spearman ρ", title=f"{backend}: validation Spearman")
        _save(figure, spearman_path)


def prediction_figure(true: np.ndarray, predicted: np.ndarray, metrics: dict[str, Any],
                      backend: str, path: str | os.PathLike) -> None:
    """Predicted vs true scores on the test split, ρ and its 95% CI in the title."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(figsize=SIZE)
        axes.scatter(true, predicted, s=14, alpha=0.7)
        low = float(min(np.min(true), np.min(predicted)))
        high = float(max(np.max(true), np.max(predicted)))
        axes.plot([low, high], [low, high], color="grey", linewidth=1, linestyle="--")
        axes.set(xlabel="true score", ylabel="predicted score",
                 title=f"{backend}: test ρ = {metrics['spearman']:.3f} "
                       f"[{metrics['spearman_ci95_low']:.3f}, {metrics['spearman_ci95_high']:.3f}]"
                       f", n = {metrics['n']}")
        _save(figure, path)


def comparison_figure(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Test Spearman of each backend (and fusion, when present) with its 95% CI."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(figsize=SIZE)
        names = [row["name"] for row in rows]
        values = np.array([row["spearman"] for row in rows])
        errors = np.array([[row["spearman"] - row["spearman_ci95_low"] for row in rows],
                           [row["spearman_ci95_high"] - row["spearman"] for row in rows]])
        axes.bar(names, values, yerr=errors, capsize=6, color="tab:blue", alpha=0.8)
        for x, value in enumerate(values):
            axes.annotate(f"{value:.3f}", (x, value), textcoords="offset points", xytext=(8, 4))
        axes.set(ylabel="test Spearman ρ (95% CI)", title="Test Spearman by backend")
        axes.axhline(0, color="black", linewidth=0.8)
        _save(figure, path)


def folds_figure(per_fold: dict[str, Sequence[float]], path: str | os.PathLike) -> None:
    """Test Spearman of each chain on each cross-validation fold (the same folds for every
    chain, so lines that cross are folds where the order of two chains changes), with each
    chain's mean in the legend. With no folds, a figure that says cross-validation is off."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(figsize=SIZE)
        if not per_fold:
            axes.text(0.5, 0.5, "cross-validation off: set cv.folds, e.g.\n"
                      "dvc exp run -S 'cv.folds=[0,1,2,3,4]'", ha="center", va="center")
            axes.set_axis_off()
        for name, scores in per_fold.items():
            values = np.array([np.nan if s is None else s for s in scores], dtype=float)
            folds = np.arange(len(values))
            mean = f"{np.nanmean(values):.3f}" if np.isfinite(values).any() else "n/a"
            axes.plot(folds, values, marker="o", label=f"{name} (mean {mean})")
            axes.set_xticks(folds)
        if per_fold:
            axes.set(xlabel="fold", ylabel="test Spearman ρ",
                     title="Test Spearman per cross-validation fold")
            axes.legend(loc="best")
        _save(figure, path)
