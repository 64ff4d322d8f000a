import numpy as np
import pytest
import torch

from vidmem.errors import ParamsError
from vidmem.normalize import InputSpec, resize_frames


def spec(value, size=8, resize="squash"):
    return InputSpec.from_params({"size": size, "resize": resize, "value": value}, "test.input")


def fed_values(s, levels=(0, 128, 255)):
    frames = torch.tensor(levels, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 2, 2, 3)
    return s.to_network_values(frames.contiguous())[:, 0, 0, 0].tolist()


def test_value_conventions():
    # TF-Hub image modules: [0, 1]
    assert fed_values(spec({"range": [0, 1]})) == pytest.approx([0, 128 / 255, 1])
    # classic Inception graph / TF-for-Poets: (x - 128) / 128
    assert fed_values(spec({"subtract": 128, "divide": 128})) == pytest.approx([-1, 0, 127 / 128])
    # torchvision: ImageNet mean/std on [0, 1]
    s = spec({"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})
    assert fed_values(s)[0] == pytest.approx(-0.485 / 0.229)
    assert s.value_bounds == pytest.approx(((0 - 0.485) / 0.229, (1 - 0.406) / 0.225))


def test_channels_are_mapped_separately():
    s = spec({"mean": [0.0, 0.5, 1.0], "std": [1.0, 0.5, 0.25]})
    x = s.to_network_values(torch.full((1, 1, 1, 3), 255, dtype=torch.uint8))
    assert x.flatten().tolist() == pytest.approx([1.0, 1.0, 0.0])


@pytest.mark.parametrize("value", [{}, {"range": [0]}, {"subtract": 1, "divide": 0},
                                   {"mean": [0, 0, 0]}, {"scale": 2}])
def test_bad_value_specs_are_refused(value):
    with pytest.raises(ParamsError, match="test.input.value"):
        spec(value)


def test_squash_and_center_crop_geometry():
    frames = np.zeros((2, 20, 40, 3), np.uint8)
    frames[:, :, 10:30] = 200  # a bright band in the middle 20 columns
    squashed = resize_frames(frames, spec({"range": [0, 1]}, size=10))
    assert squashed.shape == (2, 10, 10, 3) and squashed.dtype == np.uint8
    assert squashed[0, :, 0].max() < 50 and squashed[0, :, 5].min() > 150
    cropped = resize_frames(frames, spec({"range": [0, 1]}, size=10, resize="center_crop"))
    # Crop keeps the centre 20x20 (scaled to 10x10): the band fills it.
    assert cropped.shape == (2, 10, 10, 3) and cropped.min() > 150


def test_named_presets_equal_their_mappings():
    assert spec("tf_inception") == spec({"subtract": 128, "divide": 128})
    assert spec("unit_range") == spec({"range": [0, 1]})
    assert spec("imagenet") == spec({"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})
    with pytest.raises(ParamsError, match="not one of"):
        spec("zero_to_one")


@pytest.mark.parametrize("value", ["tf_inception", "imagenet", {"range": [1, -1]}])
def test_fed_range_equals_the_range_of_the_mapped_batch(value):
    s = spec(value, size=4)
    frames = np.random.default_rng(0).integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
    mapped = s.to_network_values(torch.from_numpy(frames))
    assert s.fed_range(frames) == pytest.approx((float(mapped.min()), float(mapped.max())))
