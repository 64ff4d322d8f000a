"""The stages' PNG figures: valid images of the declared size, and the same bytes for the same
numbers (so DVC sees no change on a re-run)."""

from __future__ import annotations

import struct

import numpy as np
import pandas as pd

from vidmem.learn.figures import comparison_figure, prediction_figure, training_figures

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def history() -> pd.DataFrame:
    epochs = np.arange(1, 21)
    return pd.DataFrame({"epoch": epochs, "train_loss": 1 / epochs, "val_loss": 1.2 / epochs,
                         "val_spearman": np.sin(epochs / 7)})


def test_training_figures_are_deterministic_pngs(tmp_path):
    for run in ("a", "b"):
        training_figures(history(), 11, "eff", tmp_path / f"{run}_loss.png",
                         tmp_path / f"{run}_val.png")
    for name in ("loss", "val"):
        assert png_size(tmp_path / f"a_{name}.png") == (640, 400)
        assert (tmp_path / f"a_{name}.png").read_bytes() == (tmp_path / f"b_{name}.png").read_bytes()
    other = history().assign(val_spearman=lambda h: h.val_spearman * 0.5)
    training_figures(other, 11, "eff", tmp_path / "c_loss.png", tmp_path / "c_val.png")
    assert (tmp_path / "c_val.png").read_bytes() != (tmp_path / "a_val.png").read_bytes()
    assert b"Software" not in (tmp_path / "a_loss.png").read_bytes()  # no version stamp


def test_prediction_and_comparison_figures(tmp_path):
    rng = np.random.default_rng(0)
    true = rng.uniform(0.5, 1, 30)
    metrics = {"spearman": 0.9, "spearman_ci95_low": 0.77, "spearman_ci95_high": 0.95, "n": 30}
    prediction_figure(true, true + rng.normal(0, 0.02, 30), metrics, "eff",
                      tmp_path / "pred.png")
    assert png_size(tmp_path / "pred.png") == (640, 400)
    assert drawn_fraction(tmp_path / "pred.png") > 0.01  # not a blank canvas
    # Other predictions draw other points: the figure is made from its data.
    prediction_figure(true, rng.uniform(0.5, 1, 30), metrics, "eff", tmp_path / "other.png")
    assert pixels(tmp_path / "other.png").tobytes() != pixels(tmp_path / "pred.png").tobytes()
    rows = [{"name": "eff", **metrics}, {"name": "fusion", "spearman": 0.93,
                                         "spearman_ci95_low": 0.8, "spearman_ci95_high": 0.97}]
    comparison_figure(rows, tmp_path / "compare.png")
    assert png_size(tmp_path / "compare.png") == (640, 400)
    assert drawn_fraction(tmp_path / "compare.png") > 0.01
    comparison_figure([rows[0], {**rows[1], "spearman": 0.85}], tmp_path / "compare2.png")
    assert pixels(tmp_path / "compare2.png").tobytes() != pixels(tmp_path / "compare.png").tobytes()


def pixels(path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def drawn_fraction(path) -> float:
    """Fraction of pixels that differ from the background (the corner pixel's colour)."""
    image = pixels(path)
    return float((image != image[0, 0]).any(axis=-1).mean())
