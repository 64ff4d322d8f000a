"""The tfhub backend, through the real `hub.KerasLayer` loading code, on a module saved here."""

import numpy as np
import pytest

from vidmem.core.params import Params

from conftest import extract_videos, pinned_or_skip, tensorflow_or_skip
from helpers import save_input_stats_module

tf = tensorflow_or_skip()
pinned_or_skip("tensorflow_hub")


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hub") / "input_stats"
    save_input_stats_module(path)
    return path


def backend(module_dir, value):
    from vidmem.backends import create_backend

    config = {"kind": "tfhub", "handle": str(module_dir),
              "input": {"size": 8, "value": value}}
    return create_backend(Params({"backend": {"hub": config}}), "hub")


def frames():
    x = np.zeros((2, 8, 8, 3), np.uint8)
    x[:, :4] = 255  # half white, half black
    return x


def test_hub_convention_feeds_zero_to_one(module_dir, tmp_path):
    hub = backend(module_dir, "unit_range")
    (features,), info = extract_videos(hub, [frames()], tmp_path)
    assert hub.feature_dim == 4
    # The module's own statistics of its input: what it was really fed.
    np.testing.assert_allclose(features[:, :3], [[0, 1, 0.5]] * 2, atol=1e-6)
    assert info["observed_input_range"] == [0.0, 1.0] and info["input_range_matches"] is True


def test_reference_mistake_is_fed_and_flagged(module_dir, tmp_path):
    hub = backend(module_dir, "tf_inception")
    (features,), info = extract_videos(hub, [frames()], tmp_path)
    np.testing.assert_allclose(features[0, :2], [-1, 127 / 128], atol=1e-6)
    assert info["observed_input_range"] == [-1.0, round(127 / 128, 4)]
    assert info["input_range_matches"] is False and info["expected_input_range"] == [0, 1]


def test_missing_module_folder_is_a_clear_error(tmp_path):
    from vidmem.core.errors import ParamsError

    with pytest.raises(ParamsError, match="not found"):
        backend(tmp_path / "nope", "unit_range")
