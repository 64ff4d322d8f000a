"""Training the LSTM (train stage) and scoring with a checkpoint (evaluate, predict)."""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from vidmem.devices import resolve_device
from vidmem.errors import DataError
from vidmem.files import atomic_path
from vidmem.metrics import spearman
from vidmem.model import MemorabilityLSTM
from vidmem.params import TrainConfig


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


def _predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def train_model(features: np.ndarray, targets: np.ndarray, train_idx: np.ndarray,
                val_idx: np.ndarray, config: TrainConfig, progress: bool = True) -> TrainResult:
    """Fit MemorabilityLSTM on features[train_idx] with MSE and Adam; keep the epoch with the
    best validation Spearman (the reference's model selection)."""
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
    mean = features[train_idx].mean(axis=(0, 1))
    std = features[train_idx].std(axis=(0, 1)) + 1e-6
    x_all = torch.from_numpy(((features - mean) / std).astype(np.float32))
    x_train = x_all[train_idx].to(device)
    y_train = torch.from_numpy(train_y).to(device)
    x_val = x_all[val_idx].to(device)

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
    for epoch in tqdm(range(1, config.epochs + 1), desc="train", unit="epoch",
                      disable=not progress):
        model.train()
        order = torch.randperm(len(x_train), generator=shuffler).to(device)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start:start + config.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        val_pred = _predict(model, x_val, config.batch_size).cpu().numpy()
        val_spearman = spearman(val_y, val_pred)
        history.append({"epoch": epoch, "train_loss": total / len(x_train),
                        "val_loss": float(np.mean((val_pred - val_y) ** 2)),
                        "val_spearman": val_spearman})
        score = -math.inf if math.isnan(val_spearman) else val_spearman
        if best_state is None or score > best_val:
            best_state, best_epoch, best_val = copy.deepcopy(model.state_dict()), epoch, score
    model.load_state_dict(best_state)
    checkpoint = {
        "state_dict": {k: v.cpu() for k, v in best_state.items()},
        "input_size": int(features.shape[2]),
        "hidden_size": config.hidden_size,
        "num_layers": config.num_layers,
        "feature_mean": torch.from_numpy(mean.astype(np.float32)),
        "feature_std": torch.from_numpy(std.astype(np.float32)),
        "target": config.target,
        "best_epoch": best_epoch,
        "trained_on": device.type,
    }
    return TrainResult(model, checkpoint, pd.DataFrame(history), best_epoch,
                       best_val if best_val > -math.inf else math.nan)


def save_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(path: str | os.PathLike) -> tuple[MemorabilityLSTM, dict[str, Any]]:
    """Load a checkpoint safely (weights_only: no code runs) and rebuild its model."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"checkpoint {path} not found: run the train stage first (`dvc repro`)")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = MemorabilityLSTM(checkpoint["input_size"], checkpoint["hidden_size"],
                             checkpoint["num_layers"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), checkpoint


def predict_scores(model: MemorabilityLSTM, checkpoint: dict[str, Any], features: np.ndarray,
                   batch_size: int = 1000) -> np.ndarray:
    """Scores for features [videos, frames, dim], standardized as in training."""
    if features.ndim != 3 or features.shape[2] != checkpoint["input_size"]:
        raise DataError(f"features {list(features.shape)} do not fit this checkpoint, which "
                        f"expects [videos, frames, {checkpoint['input_size']}]")
    mean = checkpoint["feature_mean"].numpy()
    std = checkpoint["feature_std"].numpy()
    x = torch.from_numpy(((features - mean) / std).astype(np.float32))
    return _predict(model, x, batch_size).numpy()


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
