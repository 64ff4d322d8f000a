"""The tfhub backend, through the real `hub.KerasLayer` loading code, on a module saved here."""

import numpy as np
import pytest

from conftest import tensorflow_or_skip
from helpers import save_input_stats_module

tf = tensorflow_or_skip()
pytest.importorskip("tensorflow_hub")


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hub") / "input_stats"
    save_input_stats_module(path)
    return path


def backend(module_dir, value):
    from vidmem.backends import create_backend

    config = {"kind": "tfhub", "handle": str(module_dir),
              "input": {"size": 8, "value": value}}
    return create_backend({"backend": {"hub": config}}, "hub")


def frames():
    x = np.zeros((2, 8, 8, 3), np.uint8)
    x[:, :4] = 255  # half white, half black
    return x


def test_hub_convention_feeds_zero_to_one(module_dir):
    hub = backend(module_dir, {"range": [0, 1]})
    features = hub.extract(frames())
    assert hub.feature_dim == 4
    np.testing.assert_allclose(features[:, :3], [[0, 1, 0.5]] * 2, atol=1e-6)
    assert hub.describe()["input_range_matches"] is True


def test_reference_mistake_is_fed_and_flagged(module_dir):
    hub = backend(module_dir, {"subtract": 128, "divide": 128})
    features = hub.extract(frames())
    np.testing.assert_allclose(features[0, :2], [-1, 127 / 128], atol=1e-6)
    info = hub.describe()
    assert info["input_range_matches"] is False and info["expected_input_range"] == [0, 1]


def test_missing_module_folder_is_a_clear_error(tmp_path):
    from vidmem.errors import ParamsError

    with pytest.raises(ParamsError, match="not found"):
        backend(tmp_path / "nope", {"range": [0, 1]})
