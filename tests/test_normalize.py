import numpy as np
import pytest
import torch

from vidmem.core.errors import ParamsError
from vidmem.store.framestore import FrameFormat
from vidmem.store.shards import ShardReader, write_arrays
from vidmem.video.geometry import InputSpec, resize_frames
from vidmem.video.normalize import normalize_step


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


# --- the normalize stage --------------------------------------------------------------------

def decoded(tmp_path, size=(16, 16), videos=3, seed=0):
    """A decode-like output: `videos` videos of 4 random frames at `size`, stored as TIFF."""
    rng = np.random.default_rng(seed)
    arrays = {f"video{i}": rng.integers(0, 256, (4, *size, 3), dtype=np.uint8)
              for i in range(videos)}
    write_arrays(tmp_path / "frames", arrays.items(), FrameFormat("tiff"))
    return arrays


def test_frames_already_at_the_geometry_are_decodes_own_files(tmp_path):
    arrays = decoded(tmp_path)
    metrics = normalize_step(tmp_path / "frames", tmp_path / "out", spec("unit_range", 16),
                             (0.0, 1.0), FrameFormat("tiff"), progress=False)
    assert metrics["stored_as_decoded"] and metrics["resized"] == 0 and metrics["videos"] == 3
    for source in (tmp_path / "frames").iterdir():  # one file on disk, so one in DVC's cache
        assert (tmp_path / "out" / source.name).samefile(source)
    reader = ShardReader(tmp_path / "out")
    for stem, frames in arrays.items():
        assert np.array_equal(reader.load(stem), frames)


def test_videos_with_the_same_frames_are_counted_each_and_still_linked(tmp_path):
    """Copies of one clip under several names share a digest; each is one video, so none of
    them is counted as resized and the output stays decode's files (the GPU box's end-to-end
    run, 128 clips under 8,000 names, rewrote every video when videos were counted per digest)."""
    frames = np.random.default_rng(5).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    other = np.random.default_rng(6).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    write_arrays(tmp_path / "frames", [("a", frames), ("b", frames), ("c", frames), ("d", other)],
                 FrameFormat("tiff"))
    metrics = normalize_step(tmp_path / "frames", tmp_path / "out", spec("unit_range", 16),
                             (0.0, 1.0), FrameFormat("tiff"), progress=False)
    assert metrics["resized"] == 0 and metrics["stored_as_decoded"] and metrics["videos"] == 4
    for source in (tmp_path / "frames").iterdir():
        assert (tmp_path / "out" / source.name).samefile(source)


def test_frames_at_another_size_are_stored_at_the_network_input(tmp_path):
    arrays = decoded(tmp_path, size=(12, 20))
    s = spec("symmetric_range", 8, resize="center_crop")
    metrics = normalize_step(tmp_path / "frames", tmp_path / "out", s, (-1.0, 1.0),
                             FrameFormat("tiff"), progress=False)
    assert metrics["resized"] == 3 and not metrics["stored_as_decoded"]
    reader = ShardReader(tmp_path / "out")
    assert reader.suffix == ".tif"
    for stem, frames in arrays.items():
        assert np.array_equal(reader.load(stem), resize_frames(frames, s))


def test_a_mix_of_sizes_is_resized_where_needed_and_a_rerun_works_on_nothing(tmp_path):
    """Decode never upscales, so small videos sit beside videos already at the geometry: the
    output holds decode's bytes for the latter and resized frames for the former. On the
    per-video engine with a cache, a re-run finds every video (no frame is loaded) and writes
    the same bytes."""
    rng = np.random.default_rng(3)
    arrays = {"a": rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8),
              "b": rng.integers(0, 256, (2, 9, 12, 3), dtype=np.uint8),
              "c": rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)}
    write_arrays(tmp_path / "frames", arrays.items(), FrameFormat("tiff"))
    s = spec("unit_range", 16)
    first = normalize_step(tmp_path / "frames", tmp_path / "one", s, (0.0, 1.0),
                           FrameFormat("tiff"), tmp_path / "cache", progress=False)
    assert first["resized"] == 1 and not first["stored_as_decoded"]
    reader, frames = ShardReader(tmp_path / "one"), ShardReader(tmp_path / "frames")
    assert reader.read("a") == frames.read("a") and reader.read("c") == frames.read("c")
    assert np.array_equal(reader.load("b"), resize_frames(arrays["b"], s))
    assert not (tmp_path / "one" / ".entries").exists()

    import vidmem.video.normalize as module

    calls = []
    original = module.NormalizeWorker.__call__
    module.NormalizeWorker.__call__ = lambda self, chunk: calls.append(chunk) or original(self, chunk)
    try:
        again = normalize_step(tmp_path / "frames", tmp_path / "two", s, (0.0, 1.0),
                               FrameFormat("tiff"), tmp_path / "cache", progress=False)
    finally:
        module.NormalizeWorker.__call__ = original
    assert not calls and again == first
    for path in (tmp_path / "one").iterdir():
        assert (tmp_path / "two" / path.name).read_bytes() == path.read_bytes()


def test_with_a_cache_frames_at_the_geometry_leave_few_files_behind(tmp_path):
    """The default case (decode stored the network input): the output is decode's files, and
    the cache keeps each video's value sums in packs, not two loose files per video."""
    decoded(tmp_path, videos=5)
    normalize_step(tmp_path / "frames", tmp_path / "out", spec("unit_range", 16), (0.0, 1.0),
                   FrameFormat("tiff"), tmp_path / "cache", progress=False)
    for source in (tmp_path / "frames").iterdir():
        assert (tmp_path / "out" / source.name).samefile(source)
    left = [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert left and all(name.endswith((".tar", ".json")) for name in left) and len(left) <= 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == \
        sorted(p.name for p in (tmp_path / "frames").iterdir())


def test_the_fed_values_statistics_are_those_of_the_mapped_frames(tmp_path):
    arrays = decoded(tmp_path, size=(8, 8))
    s = spec("imagenet", 8)
    metrics = normalize_step(tmp_path / "frames", tmp_path / "out", s, None,
                             FrameFormat("tiff"), progress=False)
    mapped = torch.cat([s.to_network_values(torch.from_numpy(f)) for f in arrays.values()])
    for c, name in enumerate("RGB"):
        channel = mapped[:, c].double()
        stats = metrics["channels"][name]
        assert stats["min"] == pytest.approx(channel.min().item(), abs=1e-4)
        assert stats["max"] == pytest.approx(channel.max().item(), abs=1e-4)
        assert stats["mean"] == pytest.approx(channel.mean().item(), abs=1e-4)
        assert stats["std"] == pytest.approx(channel.std(unbiased=False).item(), abs=1e-4)
    assert metrics["input_range_matches"] is None  # no expected range: not known, not "fine"


@pytest.mark.parametrize(("value", "expected", "matches"), [
    ("unit_range", (0.0, 1.0), True),
    ("tf_inception", (0.0, 1.0), False),   # the reference TF-Hub run's mistake
    ("unit_range", (-1.0, 1.0), False),    # inside the range, but covers half of it
    ("symmetric_range", (-1.0, 1.0), True),
])
def test_the_value_contract_is_checked_before_any_network(tmp_path, value, expected, matches):
    decoded(tmp_path)
    metrics = normalize_step(tmp_path / "frames", tmp_path / "out", spec(value, 16), expected,
                             FrameFormat("tiff"), progress=False)
    assert metrics["input_range_matches"] is matches
    assert metrics["expected_input_range"] == list(expected)


def test_registered_torch_models_declare_their_input_range_without_building():
    from vidmem.backends.torch_backbones import MODELS, TorchBackbone

    section = {"weights": "random"}
    assert TorchBackbone.weights_input_range("b", {**section, "model": "efficientnet_lite0"}) \
        == (-1.0, 1.0)
    low, high = TorchBackbone.weights_input_range("b", {**section, "model": "inception_v3"})
    assert low < -2 and high > 2.5  # ImageNet mean/std on [0, 1]: about [-2.1, 2.6]
    assert TorchBackbone.weights_input_range(
        "b", {**section, "model": "inception_v3", "transform_input": False}) == (-1.0, 1.0)
    for model in MODELS.names():  # and what the built network reports is the same
        config = {**section, "model": model}
        built = TorchBackbone("b", spec("symmetric_range", 8), config)
        assert built.expected_range == TorchBackbone.weights_input_range("b", config), model
