"""Training the LSTM (train stage) and scoring with a checkpoint (evaluate, predict).

Features come as anything indexable by an array of rows, `features[rows] -> float32
[len(rows), frames, dim]`: a NumPy array, or a concat output read from disk on demand
(`vidmem.store.features.ConcatFeatures`), so memory holds a batch, not the data set. Both give the
same numbers: the same rows are standardized the same way in the same order.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from vidmem.core.devices import resolve_device
from vidmem.core.errors import DataError
from vidmem.core.files import atomic_path
from vidmem.core.params import TrainConfig
from vidmem.learn.metrics import spearman
from vidmem.learn.model import MemorabilityLSTM


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    # Two CPU runs with the same seed must give identical metrics.
    torch.use_deterministic_algorithms(True, warn_only=True)


@dataclass
class TrainResult:
    model: MemorabilityLSTM
    checkpoint: dict[str, Any]
    history: pd.DataFrame  # epoch, train_loss, val_loss, val_spearman
    best_epoch: int
    best_val_spearman: float


STATS_BATCH = 1024  # videos per read when computing the standardization statistics


def feature_stats(features: Any, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation (ddof 0) over every frame of `rows`, in one
    streaming pass of float64 batches combined with Chan et al.'s parallel update (stable, and
    the memory of one batch). Returned as float32, the precision the features are used in."""
    count, mean, m2 = 0, None, None
    for start in range(0, len(rows), STATS_BATCH):
        x = features[rows[start:start + STATS_BATCH]].astype(np.float64)
        x = x.reshape(-1, x.shape[-1])
        batch_mean = x.mean(axis=0)
        batch_m2 = ((x - batch_mean) ** 2).sum(axis=0)
        if mean is None:
            count, mean, m2 = len(x), batch_mean, batch_m2
            continue
        total = count + len(x)
        delta = batch_mean - mean
        mean = mean + delta * (len(x) / total)
        m2 = m2 + batch_m2 + delta**2 * (count * len(x) / total)
        count = total
    if mean is None:
        raise DataError("no training videos to compute feature statistics from")
    std = np.sqrt(m2 / count) + 1e-6
    return mean.astype(np.float32), std.astype(np.float32)


def _standardized(features: Any, rows: np.ndarray, mean: np.ndarray,
                  std: np.ndarray) -> np.ndarray:
    """`features[rows]` standardized, float32: the one arithmetic every training and scoring
    path uses, so streamed and device-resident training give the same bits."""
    return ((features[rows] - mean) / std).astype(np.float32)


def standardized_batches(features: Any, rows: np.ndarray, mean: np.ndarray, std: np.ndarray,
                         batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
    """`features[rows]` standardized, `batch_size` videos at a time, as tensors on `device`.
    The next batch is read (and, for CUDA, pinned) in a background thread while the current one
    is used, so disk reads overlap compute."""
    def load(start: int) -> torch.Tensor:
        batch = torch.from_numpy(_standardized(features, rows[start:start + batch_size], mean,
                                               std))
        return batch.pin_memory() if device.type == "cuda" else batch

    starts = range(0, len(rows), batch_size)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load, starts[0]) if starts else None
        for k in range(len(starts)):
            batch = pending.result()
            if k + 1 < len(starts):
                pending = pool.submit(load, starts[k + 1])
            yield batch.to(device, non_blocking=True)


def standardized_on_device(features: Any, rows: np.ndarray, mean: np.ndarray, std: np.ndarray,
                           device: torch.device) -> torch.Tensor:
    """`features[rows]` standardized (`_standardized`, as `standardized_batches` does), as one
    float32 tensor on `device`, read `STATS_BATCH` videos at a time."""
    out = torch.empty((len(rows), *features.shape[1:]), dtype=torch.float32, device=device)
    for start in range(0, len(rows), STATS_BATCH):
        chunk = _standardized(features, rows[start:start + STATS_BATCH], mean, std)
        out[start:start + len(chunk)] = torch.from_numpy(chunk).to(device)
    return out


def resident_budget_bytes(config: TrainConfig, device: torch.device) -> int:
    """How many bytes of standardized features training may keep on `device`
    (`train.data_on_device_mb`). `auto`: on a GPU, half of its free memory; on the CPU, none,
    so memory stays flat as the data grows (features are streamed from disk a batch at a time)."""
    if config.data_on_device_mb is not None:
        return config.data_on_device_mb * 2**20
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return 0


def _predict_batches(model: nn.Module, batches: Iterator[torch.Tensor]) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        scores = [model(x) for x in batches]
    return torch.cat(scores).cpu().numpy() if scores else np.empty(0, np.float32)


def _predict(model: nn.Module, features: Any, rows: np.ndarray, mean: np.ndarray,
             std: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    return _predict_batches(model, standardized_batches(features, rows, mean, std, batch_size,
                                                        device))


def train_model(features: Any, targets: np.ndarray, train_idx: np.ndarray,
                val_idx: np.ndarray, config: TrainConfig, progress: bool = True,
                on_epoch: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
    """Fit MemorabilityLSTM on features[train_idx] with MSE and Adam; keep the epoch with the
    best validation Spearman (the reference's model selection). `features` is a [videos, frames,
    dim] array or a ConcatFeatures. When the standardized training and validation rows fit in
    `train.data_on_device_mb` they are put on the device once and every epoch runs there with no
    host round trip but one per epoch; else they are read a batch at a time, every epoch. Both
    give the same bits. `on_epoch` gets each epoch's history row as the epoch ends."""
    if features.ndim != 3:
        raise DataError(f"features must be [videos, frames, dim], got {list(features.shape)}")
    seed_everything(config.seed)
    device = resolve_device(config.device)
    train_y = targets[train_idx].astype(np.float32)
    val_y = targets[val_idx].astype(np.float32)
    if config.shuffle_train_labels:
        # Control experiment: break the link between videos and labels for everything the
        # model sees or is selected on (train and validation; the test labels stay true).
        # Test Spearman should then be near 0; if it is not, labels leak into the features.
        rng = np.random.default_rng(config.seed + 1)
        train_y, val_y = rng.permutation(train_y), rng.permutation(val_y)
    # Standardize features with training-set statistics (saved in the checkpoint), so the LSTM
    # sees inputs of similar scale whatever backbone produced them.
    mean, std = feature_stats(features, train_idx)
    y_train = torch.from_numpy(train_y).to(device)
    row_bytes = 4 * int(np.prod(features.shape[1:]))
    resident = (len(train_idx) + len(val_idx)) * row_bytes <= resident_budget_bytes(config, device)
    if resident:
        x_train = standardized_on_device(features, train_idx, mean, std, device)
        x_val = standardized_on_device(features, val_idx, mean, std, device)

    model = MemorabilityLSTM(features.shape[2], config.hidden_size, config.num_layers,
                             config.dropout).to(device)
    with torch.no_grad():
        # Start the head at the mean training score: memorability scores sit near 0.85, and
        # without this the first epochs are spent learning that offset.
        model.head.bias.fill_(float(train_y.mean()))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = nn.MSELoss()
    shuffler = torch.Generator().manual_seed(config.seed)
    history = []
    best_state, best_epoch, best_val = None, 0, -math.inf
    starts = range(0, len(train_idx), config.batch_size)
    for epoch in tqdm(range(1, config.epochs + 1), desc="train", unit="epoch",
                      disable=not progress):
        model.train()
        order = torch.randperm(len(train_idx), generator=shuffler)
        on_device = order.to(device)
        if resident:
            batches: Iterator[torch.Tensor] = (
                x_train.index_select(0, on_device[start:start + config.batch_size])
                for start in starts)
        else:
            batches = standardized_batches(features, train_idx[order.numpy()], mean, std,
                                           config.batch_size, device)
        losses = []
        for start, x in zip(starts, batches, strict=True):
            batch = on_device[start:start + config.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x), y_train[batch])
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        # One device-to-host copy per epoch; summed in Python floats in batch order, as
        # `loss.item()` per batch did.
        total = 0.0
        for start, value in zip(starts, torch.stack(losses).tolist(), strict=True):
            total += value * min(config.batch_size, len(order) - start)
        if resident:
            val_pred = _predict_batches(model, (x_val[start:start + config.batch_size]
                                                for start in range(0, len(val_idx),
                                                                   config.batch_size)))
        else:
            val_pred = _predict(model, features, val_idx, mean, std, config.batch_size, device)
        val_spearman = spearman(val_y, val_pred)
        history.append({"epoch": epoch, "train_loss": total / len(train_idx),
                        "val_loss": float(np.mean((val_pred - val_y) ** 2)),
                        "val_spearman": val_spearman})
        if on_epoch is not None:
            on_epoch(history[-1])
        score = -math.inf if math.isnan(val_spearman) else val_spearman
        if best_state is None or score > best_val:
            best_state, best_epoch, best_val = copy.deepcopy(model.state_dict()), epoch, score
    model.load_state_dict(best_state)
    checkpoint = {
        "state_dict": {k: v.cpu() for k, v in best_state.items()},
        "input_size": int(features.shape[2]),
        "hidden_size": config.hidden_size,
        "num_layers": config.num_layers,
        "feature_mean": torch.from_numpy(mean),
        "feature_std": torch.from_numpy(std),
        "target": config.target,
        "best_epoch": best_epoch,
        "trained_on": device.type,
    }
    return TrainResult(model, checkpoint, pd.DataFrame(history), best_epoch,
                       best_val if best_val > -math.inf else math.nan)


def save_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """Write the checkpoint atomically, the same bytes for the same contents: torch.save names the
    archive's inner folder after a path it is given (here a random temporary name), but uses a
    fixed one for a file object, so DVC sees no change when a re-run trains the same weights."""
    with atomic_path(path, suffix=".pt") as tmp, open(tmp, "wb") as f:
        torch.save(checkpoint, f)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's values, read with torch's weights_only loader: tensors, numbers, strings,
    lists and dicts only, so reading it runs no code."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"checkpoint {path} not found: run the train stage first (`dvc repro`)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, ...
        # Not torch's advice to retry with weights_only=False: that would run the file's code.
        raise DataError(f"{path}: not a readable vidmem checkpoint ({type(exc).__name__}): it "
                        "is damaged or holds pickled objects, which are never loaded since "
                        "they could run code; retrain it with `dvc repro`") from None
    if not isinstance(checkpoint, dict):
        raise DataError(f"{path}: not a vidmem checkpoint (a {type(checkpoint).__name__}, not a "
                        "mapping); retrain it with `dvc repro`")
    _check_finite(checkpoint, path, "")
    return checkpoint


def _check_finite(value: Any, path: Path, where: str) -> None:
    """Every weight in a checkpoint is a finite number: a NaN or infinite weight would give
    NaN or infinite scores, written as if they were results."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, path, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_finite(item, path, f"{where}[{index}]")
    elif (isinstance(value, torch.Tensor) and value.is_floating_point()
          and not torch.isfinite(value).all()) or (
            isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating)
            and not np.isfinite(value).all()):
        raise DataError(f"{path}: '{where}' holds NaN or infinite values; retrain it with "
                        "`dvc repro`")


MAX_LSTM_SIZE = 1 << 16  # units or input dimensions an LSTM checkpoint may declare


def lstm_from_checkpoint(checkpoint: dict[str, Any],
                         path: str | os.PathLike = "the checkpoint") -> MemorabilityLSTM:
    """The trained LSTM rebuilt from an LSTM checkpoint's values, in eval mode. The declared
    sizes are checked against the stored weights' shapes on the meta device first (nothing
    allocated), so a checkpoint claiming 10^6 hidden units is refused, not built."""
    sizes = {key: checkpoint.get(key) for key in ("input_size", "hidden_size", "num_layers")}
    for key, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_LSTM_SIZE:
            raise DataError(f"{path}: '{key}' is {value!r}, not a size in 1..{MAX_LSTM_SIZE}")
    state = checkpoint.get("state_dict")
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in MemorabilityLSTM(*sizes.values())
                    .state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()} if isinstance(state, dict) else None
    if found != expected:
        raise DataError(f"{path}: 'state_dict' does not hold the weights of an LSTM with input "
                        f"{sizes['input_size']}, hidden {sizes['hidden_size']} and "
                        f"{sizes['num_layers']} layers; retrain it with `dvc repro`")
    model = MemorabilityLSTM(*sizes.values())
    model.load_state_dict(state)
    return model.eval()


def load_checkpoint(path: str | os.PathLike) -> tuple[MemorabilityLSTM | None, dict[str, Any]]:
    """Load a checkpoint safely (weights_only: no code runs) and rebuild its LSTM; the model is
    None for another head's checkpoint (`vidmem.learn.chain.load_scorer` reads every kind)."""
    checkpoint = read_checkpoint(path)
    if checkpoint.get("head", "lstm") != "lstm":
        return None, checkpoint
    return lstm_from_checkpoint(checkpoint, path), checkpoint


def check_features_fit(features: Any, checkpoint: dict[str, Any]) -> None:
    """DataError unless `features` are [videos, frames, dim] with the checkpoint's dim."""
    if features.ndim != 3 or features.shape[2] != checkpoint["input_size"]:
        raise DataError(f"features {list(features.shape)} do not fit this checkpoint, which "
                        f"expects [videos, frames, {checkpoint['input_size']}]")


def predict_scores(model: MemorabilityLSTM, checkpoint: dict[str, Any], features: Any,
                   rows: np.ndarray | None = None, batch_size: int = 1000) -> np.ndarray:
    """Scores for `features[rows]` (default: every row) of a [videos, frames, dim] array or
    ConcatFeatures, standardized as in training, read a batch at a time (on the CPU)."""
    check_features_fit(features, checkpoint)
    rows = np.arange(len(features)) if rows is None else np.asarray(rows)
    return _predict(model, features, rows, checkpoint["feature_mean"].numpy(),
                    checkpoint["feature_std"].numpy(), batch_size, torch.device("cpu"))


def split_indices(videos: list[str], split: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Row indices of each split's videos in a concat array; a split video missing from the
    features is an error, never a silent shift of rows."""
    position = {v: i for i, v in enumerate(videos)}
    result = {}
    for part, names in split.items():
        missing = [v for v in names if v not in position]
        if missing:
            raise DataError(f"{len(missing)} '{part}' video(s) have no features, e.g. "
                            f"{missing[:3]}: re-run `dvc repro` so concat and split agree")
        result[part] = np.array([position[v] for v in names], dtype=np.int64)
    return result
