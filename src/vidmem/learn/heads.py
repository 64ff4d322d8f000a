"""Heads that turn a video's features into a score: the reference LSTM (vidmem.learn.training), or
ridge, RBF support-vector regression or a one-hidden-layer MLP (scikit-learn) on one vector per
video (mean-pooled frame features, caption TF-IDF or sentence embeddings), with the
regularisation strength picked by validation Spearman
only (the test split is never seen).

`heads.<backend>` in params.yaml picks the head of each backend's chain; the heads are
registered, fitted and loaded in vidmem.learn.chain.

Every grid head fits z-scored targets (the training part's mean and standard deviation,
scikit-learn's `TransformedTargetRegressor`) and maps its predictions back: memorability scores
span about 0.3, so on raw scores an SVR's C and epsilon, and an MLP's step size, would sit on a
scale of their own per data set and target. Ridge's ranks do not change.

A fitted scikit-learn head is saved as plain arrays (`estimator_state`): the target's mean and
scale, the features' scaler's mean and scale, ridge's coefficients and intercept, or SVR's
support vectors, dual coefficients, intercept and gamma. `ArrayHead` scores from them with
numpy. Nothing is pickled, so a checkpoint fetched from a DVC remote or sent by someone else
holds tensors and numbers only, which torch's `weights_only` loader reads without running code.
(skops.io would also refuse unknown types, but it still rebuilds scikit-learn objects from a
type allow-list; plain arrays leave nothing to allow.)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import sparse
from sklearn.compose import TransformedTargetRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from vidmem.core.errors import ParamsError
from vidmem.learn.metrics import spearman

MLP_HIDDEN = 256  # one hidden ReLU layer
MLP_EPOCHS = 60  # Adam passes over the training rows (fixed: the strength is what is chosen)
POOL_CHUNK = 1024  # videos read at a time when mean-pooling a concat output
SPARSE_BELOW = 0.1  # fraction of non-zeros under which a design matrix is kept sparse (TF-IDF)


def mean_pooled(features: np.ndarray) -> np.ndarray:
    """[videos, frames, dim] → [videos, dim]: one vector per video for the non-sequence heads."""
    return features.mean(axis=1) if features.ndim == 3 else features


def pooled_rows(features: Any, rows: np.ndarray) -> np.ndarray:
    """Mean-pooled float32 [len(rows), dim] of a [videos, frames, dim] array or ConcatFeatures,
    read `POOL_CHUNK` videos at a time (memory: the pooled matrix plus one chunk)."""
    rows = np.asarray(rows)
    out = np.empty((len(rows), features.shape[2]), dtype=np.float32)
    for start in range(0, len(rows), POOL_CHUNK):
        out[start:start + POOL_CHUNK] = mean_pooled(features[rows[start:start + POOL_CHUNK]])
    return out


def is_sparse(x: np.ndarray) -> bool:
    """Whether a (training) design matrix is mostly zeros, as TF-IDF rows are."""
    return bool(x.size and np.count_nonzero(x) / x.size < SPARSE_BELOW)


def design_matrix(x: np.ndarray, as_sparse: bool) -> np.ndarray | sparse.csr_matrix:
    """`x` as CSR (`as_sparse`: the SVR kernel then costs the non-zeros, not the vocabulary
    size, and the heads see what they would see from scikit-learn's text vectorizer) or dense.
    The train stage decides once, on the training rows, and the checkpoint keeps the choice, so
    every split goes in the same form."""
    return sparse.csr_matrix(x) if as_sparse else x


class GridModel:
    """One scikit-learn regressor family a grid head fits: the model at a strength, its fitted
    state as plain arrays (`state`, after the shared scaler's), and scores from that state with
    numpy (`score`). One class per family; nothing switches on the family's name."""

    name: str
    grid: list[float]  # strengths, from weak to strong regularisation or the reverse

    def build(self, strength: float) -> Any:
        raise NotImplementedError

    def state(self, model: Any) -> dict[str, Any]:
        raise NotImplementedError

    def load(self, state: dict[str, Any]) -> dict[str, Any]:
        """The state's arrays as numpy, ready for `score`."""
        raise NotImplementedError

    def score(self, loaded: dict[str, Any], x: Any) -> np.ndarray:
        raise NotImplementedError


class RidgeModel(GridModel):
    # alpha (larger: smoother). It reaches 30,000: with a grid that ended at 1000, MiniLM's 384
    # standardized dimensions on the real labels chose 1000 in 5 of 5 folds, and so did the
    # demo's TF-IDF captions.
    name, grid = "ridge", [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 1e4, 3e4]

    def build(self, strength: float) -> Any:
        return Ridge(alpha=strength)

    def state(self, model: Any) -> dict[str, Any]:
        return {"coef": _tensor(model.coef_), "intercept": float(model.intercept_)}

    def load(self, state: dict[str, Any]) -> dict[str, Any]:
        return {"coef": state["coef"].numpy(), "intercept": float(state["intercept"])}

    def score(self, loaded: dict[str, Any], x: Any) -> np.ndarray:
        return np.asarray(x @ loaded["coef"], dtype=np.float64).ravel() + loaded["intercept"]


class SVRModel(GridModel):
    # C (larger: less regularised), for z-scored targets; epsilon 0.1 of the targets' sd.
    name, grid = "svr", [0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]

    def build(self, strength: float) -> Any:
        return SVR(kernel="rbf", C=strength, epsilon=0.1, gamma="scale")

    def state(self, model: Any) -> dict[str, Any]:
        vectors = model.support_vectors_
        dual = model.dual_coef_  # sparse when the training rows were
        dual = dual.toarray() if sparse.issparse(dual) else dual
        state = {"dual_coef": _tensor(dual.ravel()), "intercept": float(model.intercept_[0]),
                 "gamma": float(model._gamma)}
        if sparse.issparse(vectors):  # TF-IDF: keep the support vectors sparse (CSR parts)
            vectors = sparse.csr_matrix(vectors)
            state.update(sv_data=_tensor(vectors.data),
                         sv_indices=torch.from_numpy(vectors.indices.astype(np.int64)),
                         sv_indptr=torch.from_numpy(vectors.indptr.astype(np.int64)),
                         sv_shape=list(vectors.shape))
        else:
            state["support_vectors"] = _tensor(vectors)
        return state

    def load(self, state: dict[str, Any]) -> dict[str, Any]:
        if "sv_data" in state:
            vectors = sparse.csr_matrix(
                (state["sv_data"].numpy(), state["sv_indices"].numpy(), state["sv_indptr"].numpy()),
                shape=tuple(state["sv_shape"]))
            norms = np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel()
        else:
            vectors = state["support_vectors"].numpy()
            norms = np.einsum("ij,ij->i", vectors, vectors)
        return {"dual_coef": state["dual_coef"].numpy(), "gamma": float(state["gamma"]),
                "intercept": float(state["intercept"]), "vectors": vectors, "norms": norms}

    def score(self, loaded: dict[str, Any], x: Any) -> np.ndarray:
        x_norms = (np.asarray(x.multiply(x).sum(axis=1)).ravel() if sparse.issparse(x)
                   else np.einsum("ij,ij->i", np.asarray(x, np.float64), np.asarray(x, np.float64)))
        cross = x @ loaded["vectors"].T
        cross = cross.toarray() if sparse.issparse(cross) else np.asarray(cross)
        distances = np.maximum(x_norms[:, None] + loaded["norms"][None, :] - 2 * cross, 0)
        return np.exp(-loaded["gamma"] * distances) @ loaded["dual_coef"] + loaded["intercept"]


class MLPModel(GridModel):
    name, grid = "mlp", [1e-3, 1e-2, 1e-1, 1.0, 10.0]  # its L2 penalty, from weak to strong

    def build(self, strength: float) -> Any:  # seeded, so the same data gives the same weights
        return MLPRegressor(hidden_layer_sizes=(MLP_HIDDEN,), alpha=strength,
                            max_iter=MLP_EPOCHS, learning_rate_init=1e-3, random_state=0)

    def state(self, model: Any) -> dict[str, Any]:
        if model.activation != "relu":
            raise TypeError(f"no array form for an MLP with {model.activation} units")
        return {"weights": [_tensor(w) for w in model.coefs_],
                "biases": [_tensor(b) for b in model.intercepts_]}

    def load(self, state: dict[str, Any]) -> dict[str, Any]:
        return {"layers": [(w.numpy(), b.numpy())
                           for w, b in zip(state["weights"], state["biases"], strict=True)]}

    def score(self, loaded: dict[str, Any], x: Any) -> np.ndarray:
        for k, (weights, bias) in enumerate(loaded["layers"]):
            x = np.asarray(x @ weights, dtype=np.float64) + bias
            if k < len(loaded["layers"]) - 1:
                x = np.maximum(x, 0)
        return x.ravel()


# The grid heads by name (vidmem.learn.chain registers one head for each).
GRID_MODELS: dict[str, GridModel] = {m.name: m for m in (RidgeModel(), SVRModel(), MLPModel())}


def _model(family: GridModel, strength: float, dense: bool) -> Any:
    # Dense inputs are network features of arbitrary scale per dimension: standardize them (on
    # the training rows, inside the pipeline). Sparse TF-IDF rows are already comparable. The
    # targets are z-scored on the training rows and the predictions mapped back.
    model = family.build(strength)
    return TransformedTargetRegressor(make_pipeline(StandardScaler(), model) if dense else model,
                                      transformer=StandardScaler(), check_inverse=False)


@dataclass
class FittedHead:
    kind: str
    model: Any
    strength: float  # the chosen alpha (ridge, the MLP's L2 penalty) or C (svr)
    val_spearman: float
    # One row per strength tried: strength, train_mse, val_mse, val_spearman.
    grid: list[dict[str, float]] = field(default_factory=list)

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(self.model.predict(x), dtype=np.float64)


def fit_head(kind: str, x_train: Any, y_train: np.ndarray, x_val: Any, y_val: np.ndarray,
             grid: list[float] | None = None) -> FittedHead:
    """Fit `kind` for each strength in the grid on the training rows; keep the one with the best
    validation Spearman."""
    if kind not in GRID_MODELS:
        raise ParamsError(f"unknown head {kind!r}: fit_head fits one of {list(GRID_MODELS)}")
    family = GRID_MODELS[kind]
    dense = not sparse.issparse(x_train)
    best: FittedHead | None = None
    rows = []
    for strength in grid or family.grid:
        with warnings.catch_warnings():  # the MLP runs a fixed number of epochs by design
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = _model(family, strength, dense).fit(x_train, y_train)
        val_pred = model.predict(x_val)
        score = spearman(y_val, val_pred)
        rows.append({"strength": strength,
                     "train_mse": float(np.mean((model.predict(x_train) - y_train) ** 2)),
                     "val_mse": float(np.mean((val_pred - y_val) ** 2)), "val_spearman": score})
        if best is None or (not math.isnan(score) and
                            (math.isnan(best.val_spearman) or score > best.val_spearman)):
            best = FittedHead(kind, model, strength, score)
    best.grid = rows
    return best


def _tensor(values: Any) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))


def estimator_state(kind: str, model: Any) -> dict[str, Any]:
    """A fitted grid head of family `kind` (alone, or after a StandardScaler) as tensors and
    numbers only: what `ArrayHead` needs to score, and nothing that runs code when loaded."""
    state: dict[str, Any] = {}
    if isinstance(model, TransformedTargetRegressor):
        target, model = model.transformer_, model.regressor_
        state["target_mean"] = float(target.mean_[0])
        state["target_scale"] = float(target.scale_[0])
    if isinstance(model, Pipeline):
        scaler, model = model[0], model[-1]
        state["scaler_mean"], state["scaler_scale"] = _tensor(scaler.mean_), _tensor(scaler.scale_)
    return {**state, "kind": kind, **GRID_MODELS[kind].state(model)}


class ArrayHead:
    """Scores with a grid head rebuilt from `estimator_state` (numpy, float64): the same numbers
    as the scikit-learn estimator it was taken from, to rounding."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.family = GRID_MODELS[state["kind"]]
        self.mean = state["scaler_mean"].numpy() if "scaler_mean" in state else None
        self.scale = state["scaler_scale"].numpy() if "scaler_scale" in state else None
        self.loaded = self.family.load(state)
        # Heads saved before z-scored targets have neither: their scores are the targets'.
        self.target_mean = float(state.get("target_mean", 0.0))
        self.target_scale = float(state.get("target_scale", 1.0))

    def predict(self, x: Any) -> np.ndarray:
        if self.mean is not None:
            x = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        return self.target_mean + self.target_scale * self.family.score(self.loaded, x)


def head_checkpoint(fitted: FittedHead, input_size: int, target: str,
                    sparse_input: bool) -> dict[str, Any]:
    """What the train stage saves for a scikit-learn head (torch.save'd like the LSTM's): the
    estimator as plain arrays (`estimator_state`), never pickled."""
    return {"head": fitted.kind, "estimator": estimator_state(fitted.kind, fitted.model),
            "sparse_input": bool(sparse_input),
            "strength": fitted.strength, "input_size": input_size, "target": target}


Scorer = Callable[[Any, np.ndarray | None], np.ndarray]
