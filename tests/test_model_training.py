
import numpy as np
import pytest
import torch

from vidmem.core.errors import DataError
from vidmem.core.params import TrainConfig
from vidmem.learn.metrics import regression_metrics, spearman
from vidmem.learn.model import MemorabilityLSTM
from vidmem.learn.training import load_checkpoint, predict_scores, save_checkpoint, split_indices, train_model


def config(**overrides):
    base = dict(lr=3e-3, epochs=30, batch_size=32, target="short-term_memorability",
                hidden_size=16, num_layers=2, dropout=0.0, seed=0, device="cpu",
                shuffle_train_labels=False)
    return TrainConfig(**{**base, **overrides})


def toy_data(n=120, frames=4, dim=6, seed=0):
    """Scores are a noisy function of the mean of feature 0 over frames."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, frames, dim)).astype(np.float32)
    targets = 0.5 + 0.1 * features[:, :, 0].mean(axis=1) + rng.normal(0, 0.01, n)
    return features, targets.astype(np.float32)


def test_initial_state_comes_from_two_fc_layers():
    model = MemorabilityLSTM(input_size=10, hidden_size=7, num_layers=3)
    x = torch.randn(4, 5, 10)
    h0, c0 = model.initial_state(x)
    assert h0.shape == c0.shape == (3, 4, 7)
    assert not torch.allclose(h0, c0)  # separate layers
    # h0 depends on the input: another input gives another state.
    assert not torch.allclose(h0, model.initial_state(torch.randn(4, 5, 10))[0])
    assert model(x).shape == (4,)


@pytest.mark.parametrize("frames", [1, 3, 17])
def test_any_sequence_length(frames):
    model = MemorabilityLSTM(input_size=8, hidden_size=4, num_layers=1)
    assert model(torch.randn(2, frames, 8)).shape == (2,)


def test_training_learns_and_keeps_the_best_validation_epoch():
    features, targets = toy_data()
    result = train_model(features, targets, np.arange(80), np.arange(80, 100), config(),
                         progress=False)
    history = result.history
    assert len(history) == 30 and history.train_loss.iloc[-1] < history.train_loss.iloc[0]
    assert result.best_epoch == int(history.val_spearman.idxmax()) + 1
    assert result.best_val_spearman == pytest.approx(history.val_spearman.max())
    test = np.arange(100, 120)
    predicted = predict_scores(result.model, result.checkpoint, features[test])
    assert spearman(targets[test], predicted) > 0.6


def test_two_runs_with_one_seed_are_identical():
    features, targets = toy_data()
    runs = [train_model(features, targets, np.arange(80), np.arange(80, 100),
                        config(epochs=5), progress=False) for _ in range(2)]
    assert runs[0].history.equals(runs[1].history)


def test_shuffled_labels_control_loses_the_signal():
    features, targets = toy_data(n=300)
    result = train_model(features, targets, np.arange(200), np.arange(200, 250),
                         config(shuffle_train_labels=True), progress=False)
    test = np.arange(250, 300)
    predicted = predict_scores(result.model, result.checkpoint, features[test])
    assert abs(spearman(targets[test], predicted)) < 0.35


def test_checkpoint_round_trip_is_weights_only(tmp_path):
    features, targets = toy_data(n=40)
    result = train_model(features, targets, np.arange(30), np.arange(30, 40), config(epochs=2),
                         progress=False)
    save_checkpoint(result.checkpoint, tmp_path / "m.pt")
    model, checkpoint = load_checkpoint(tmp_path / "m.pt")  # torch.load(weights_only=True)
    np.testing.assert_allclose(predict_scores(model, checkpoint, features),
                               predict_scores(result.model, result.checkpoint, features),
                               rtol=1e-6)
    # The same contents give the same bytes, wherever and whenever saved (DVC sees no change).
    save_checkpoint(result.checkpoint, tmp_path / "again.pt")
    assert (tmp_path / "again.pt").read_bytes() == (tmp_path / "m.pt").read_bytes()
    # weights_only: a checkpoint carrying an object that runs code when unpickled is refused,
    # and the code never runs (with weights_only=False it would touch the marker).
    marker = tmp_path / "code-ran"
    save_checkpoint({**result.checkpoint, "note": _RunsCode(marker)}, tmp_path / "crafted.pt")
    # refused as a vidmem error naming the file (never torch's advice to load it unsafely).
    with pytest.raises(DataError, match="crafted.pt: not a readable vidmem checkpoint"):
        load_checkpoint(tmp_path / "crafted.pt")
    assert not marker.exists()


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_split_indices_refuse_unknown_videos():
    from vidmem.core.errors import DataError

    index = split_indices(["a", "b", "c"], {"train": ["c", "a"], "test": ["b"]})
    assert index["train"].tolist() == [2, 0]
    with pytest.raises(DataError, match="'test'"):
        split_indices(["a"], {"test": ["z"]})


def test_metrics_match_scipy_and_survive_constant_predictions():
    from scipy import stats

    rng = np.random.default_rng(0)
    true = rng.uniform(size=50)
    predicted = true + rng.normal(0, 0.2, 50)
    metrics = regression_metrics(true, predicted, bootstrap_resamples=200)
    assert metrics["spearman"] == pytest.approx(stats.spearmanr(true, predicted).statistic)
    assert metrics["pearson"] == pytest.approx(stats.pearsonr(true, predicted).statistic)
    assert metrics["mse"] == pytest.approx(np.mean((true - predicted) ** 2))
    assert metrics["spearman_ci95_low"] < metrics["spearman"] < metrics["spearman_ci95_high"]
    flat = regression_metrics(true, np.full(50, 0.5))
    assert flat["spearman"] is None and flat["spearman_ci95_low"] is None
