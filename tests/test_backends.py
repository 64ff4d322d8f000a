import numpy as np
import pytest
import torch
from skimage import data

from vidmem.backends import create_backend
from vidmem.backends.torch_backbones import IMAGENET_MEAN, IMAGENET_STD
from vidmem.core.errors import ParamsError
from vidmem.core.params import Params
from vidmem.store.shards import ShardReader, write_arrays
from vidmem.video.geometry import resize_frames

from conftest import extract_videos

EFFICIENTNET = {"kind": "torch", "model": "efficientnet_lite0", "weights": "package",
                "device": "cpu",
                "input": {"size": 224, "resize": "squash", "value": {"range": [-1, 1]}}}
IMAGENET_CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def efficientnet():
    return create_backend(Params({"backend": {"eff": EFFICIENTNET}}), "eff")


def test_efficientnet_lite0_package_weights_see_a_cat(efficientnet):
    """The shipped efficientnet_pytorch weights, renamed onto timm, classify a real photo."""
    cat = resize_frames(data.chelsea()[None], efficientnet.spec)
    logits = efficientnet.logits(cat)
    assert int(logits.argmax()) in IMAGENET_CAT_CLASSES
    assert torch.softmax(logits, 1)[0, list(IMAGENET_CAT_CLASSES)].sum() > 0.8
    assert not efficientnet.random_weights and "ImageNet" in efficientnet.weights


def test_efficientnet_features_and_fed_range(efficientnet, tmp_path):
    frames = resize_frames(np.stack([data.chelsea(), data.astronaut()[:300, :451]]),
                           efficientnet.spec)
    (features,), info = extract_videos(efficientnet, [frames], tmp_path)
    assert features.shape == (2, 1280) and features.dtype == np.float32
    low, high = info["observed_input_range"]
    assert -1 <= low < -0.5 and 0.5 < high <= 1 and info["input_range_matches"] is True


def test_features_do_not_depend_on_batch_companions(efficientnet):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (6, 224, 224, 3), dtype=np.uint8)
    together = efficientnet.extract(frames)
    other = efficientnet.extract(np.concatenate([frames[:2], frames[::-1][:4]]))
    np.testing.assert_array_equal(together[:2], other[:2])


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_is_close_to_fp32_and_cached_apart(precision, tmp_path):
    """amp runs on the CPU too; its features stay near fp32 but are never served for fp32."""
    cache = tmp_path / "cache"
    full_backend = create_backend(Params({"backend": {"eff": EFFICIENTNET}}), "eff", cache_root=cache)
    folder = tmp_path / "frames"
    folder.mkdir()  # decoded frames: extract resizes them to 224²
    write_arrays(folder, [("video0", np.stack([data.chelsea(), data.astronaut()[:300, :451]]))])
    with pytest.warns(UserWarning, match="slower"):
        mixed_backend = create_backend(Params({"backend": {"eff": {**EFFICIENTNET, "amp": precision}}}),
                                       "eff", cache_root=cache)
    runs = {}
    for amp, backend in (("false", full_backend), (precision, mixed_backend)):
        out = tmp_path / amp
        out.mkdir()
        result = backend.extract_videos(folder, out, 4, progress=False)
        assert result.cache_hits == 0  # the fp32 entry made just before is not reused
        assert result.info["numerics"] == {"device": "cpu", "precision": amp,
                                           "threads": torch.get_num_threads()}
        runs[amp] = ShardReader(out).load("video0")
    full, mixed = runs["false"], runs[precision]
    assert not np.array_equal(full, mixed)
    cosine = (full * mixed).sum(1) / np.linalg.norm(full, axis=1) / np.linalg.norm(mixed, axis=1)
    assert cosine.min() > 0.95


def test_unknown_or_missing_device_is_a_clear_error():
    from vidmem.core.devices import resolve_device
    from vidmem.core.errors import VidmemError

    with pytest.raises(VidmemError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(VidmemError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_random_weights_are_labelled():
    config = {**EFFICIENTNET, "weights": "random"}
    backend = create_backend(Params({"backend": {"r": config}}), "r")
    assert backend.random_weights and backend.describe()["random_weights"] is True
    assert "random" in backend.weights


def test_the_old_batch_size_key_names_its_new_name():
    """backend.<b>.batch_size read like the top-level batch_size (videos per LSTM step); it is
    frames per forward pass, so it was renamed, and an old params.yaml says what to write."""
    config = {**EFFICIENTNET, "weights": "random", "batch_size": 16}
    with pytest.raises(ParamsError, match=r"'backend.r.batch_size' is now "
                                          r"'backend.r.frames_per_batch'"):
        create_backend(Params({"backend": {"r": config}}), "r")
    config = {**EFFICIENTNET, "weights": "random", "frames_per_batch": 12}
    assert create_backend(Params({"backend": {"r": config}}), "r").batch_size == 12


def test_inception_v3_from_a_local_weights_file(tmp_path):
    from torchvision.models import inception_v3

    torch.manual_seed(3)
    # A weights file holds torchvision-convention weights: built with transform_input=True.
    reference = inception_v3(weights=None, aux_logits=True, init_weights=True,
                             transform_input=True).eval()
    torch.save(reference.state_dict(), tmp_path / "inception.pth")
    config = {"kind": "torch", "model": "inception_v3", "weights": str(tmp_path / "inception.pth"),
              "device": "cpu", "input": {"size": 75, "value": {"mean": list(IMAGENET_MEAN),
                                                               "std": list(IMAGENET_STD)}}}
    backend = create_backend(Params({"backend": {"iv3": config}}), "iv3")
    assert backend.feature_dim == 2048 and not backend.random_weights
    frames = np.random.default_rng(1).integers(0, 255, (2, 75, 75, 3), dtype=np.uint8)
    features = backend.extract(frames)
    reference.fc = torch.nn.Identity()
    with torch.no_grad():
        expected = reference(backend.spec.to_network_values(torch.from_numpy(frames)))
    # Untrained BN statistics give huge activations; compare relative to their scale
    # (channels_last vs contiguous kernels differ in the last bits).
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-3,
                               atol=1e-4 * float(expected.abs().max()))
    assert extract_videos(backend, [frames], tmp_path)[1]["input_range_matches"] is True


def test_inception_v3_torchvision_weights_come_from_the_torch_hub_cache(tmp_path, monkeypatch):
    """weights: torchvision uses torchvision's own download/cache code: with the file in
    $TORCH_HOME/hub/checkpoints it loads offline."""
    from torchvision.models import inception_v3

    torch.manual_seed(4)
    state = inception_v3(weights=None, aux_logits=True, init_weights=True).state_dict()
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(state, checkpoints / "inception_v3_google-0cc3c7bd.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    config = {"kind": "torch", "model": "inception_v3", "weights": "torchvision", "device": "cpu",
              "input": {"size": 75, "value": {"range": [0, 1]}}}
    backend = create_backend(Params({"backend": {"iv3": config}}), "iv3")
    assert backend.weights == "ImageNet (torchvision IMAGENET1K_V1)"
    loaded = backend.model.state_dict()
    assert torch.equal(loaded["Conv2d_1a_3x3.conv.weight"], state["Conv2d_1a_3x3.conv.weight"])
    # [0, 1] is not what these weights expect (ImageNet mean/std): the mismatch is recorded.
    videos = [np.full((1, 75, 75, 3), 255, np.uint8), np.zeros((1, 75, 75, 3), np.uint8)]
    info = extract_videos(backend, videos, tmp_path)[1]
    assert info["observed_input_range"] == [0.0, 1.0] and info["input_range_matches"] is False


def test_wrong_frame_size_is_a_clear_error(efficientnet):
    from vidmem.core.errors import VidmemError

    with pytest.raises(VidmemError, match=r"expected uint8 frames \[B, 224, 224, 3\]"):
        efficientnet.extract(np.zeros((1, 100, 100, 3), np.uint8))


def test_unknown_kind_and_plugin_kind():
    with pytest.raises(ParamsError, match="unknown backend kind"):
        create_backend(Params({"backend": {"x": {"kind": "nope", "input": {"size": 8, "value": {
            "range": [0, 1]}}}}}), "x")
    backend = create_backend(Params({"backend": {"m": {"kind": "helpers:MeanColour", "input": {
        "size": 8, "value": {"range": [0, 1]}}}}}), "m")
    assert backend.extract(np.full((2, 8, 8, 3), 255, np.uint8)).tolist() == [[1.0] * 6] * 2
