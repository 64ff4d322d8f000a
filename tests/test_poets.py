"""The poets backend through its real GraphDef loading code, on a small graph built here with
the classic tensor names (DecodeJpeg/contents:0 → ... → Mul:0 → pool_3/_reshape:0)."""

import numpy as np
import pytest

from vidmem.core.errors import DataError
from vidmem.core.params import Params

from conftest import extract_videos, tensorflow_or_skip
from helpers import save_poets_graph

tf = tensorflow_or_skip()


def build_graph(path, size=16, subtract=128.0):
    save_poets_graph(path, size, subtract)
    return path


@pytest.fixture
def poets(tmp_path):
    from vidmem.backends import create_backend

    config = {"kind": "poets", "graph": str(build_graph(tmp_path / "graph.pb")),
              "bottleneck_dir": str(tmp_path / "bottlenecks"), "jpeg_quality": 100,
              "input": {"size": 16, "value": {"subtract": 128, "divide": 128}}}
    return create_backend(Params({"backend": {"poets": config}}), "poets")


def frames():
    x = np.zeros((3, 16, 16, 3), np.uint8)
    x[:, :8] = 255
    x[1] = 128
    return x


def test_graph_does_the_tutorials_pixel_handling(poets, tmp_path):
    (features,), info = extract_videos(poets, [frames()], tmp_path)
    assert poets.feature_dim == 3
    # The 'network' reports min/max/mean of what the graph fed it: (x-128)/128 of the frame.
    np.testing.assert_allclose(features[0], [-1, 127 / 128, -1 / 256], atol=0.02)
    np.testing.assert_allclose(features[1], [0, 0, 0], atol=0.02)
    assert info["input_range_matches"] is True


def test_a_graph_that_normalizes_otherwise_is_refused(tmp_path):
    from vidmem.backends import create_backend
    from vidmem.core.errors import VidmemError

    config = {"kind": "poets", "graph": str(build_graph(tmp_path / "g.pb", subtract=64.0)),
              "bottleneck_dir": str(tmp_path / "b"), "input": {"size": 16, "value": "tf_inception"}}
    with pytest.raises(VidmemError, match="maps pixel value 0 to -0.500 at Mul:0"):
        create_backend(Params({"backend": {"p": config}}), "p")


def test_bottleneck_files_are_reused_and_corrupt_ones_recomputed(poets):
    first = poets.extract(frames())
    files = sorted(poets.bottleneck_dir.iterdir())
    assert len(files) == 2  # frames 0 and 2 are the same image: one bottleneck
    text = files[0].read_text()
    assert "," in text and not text.endswith("\n") and "np.float32" not in text
    poets.reused = 0
    np.testing.assert_array_equal(poets.extract(frames()), first)
    assert poets.reused == 3
    files[0].write_text(text[: len(text) // 2] + "x")  # truncated and not a float
    poets.reused = 0
    np.testing.assert_array_equal(poets.extract(frames()), first)
    assert poets.reused < 3 and files[0].read_text() == text


def test_other_declared_values_are_refused(tmp_path):
    from vidmem.backends import create_backend
    from vidmem.core.errors import ParamsError

    config = {"kind": "poets", "graph": str(build_graph(tmp_path / "g.pb")),
              "input": {"size": 16, "value": {"range": [0, 1]}}}
    with pytest.raises(ParamsError, match="subtract: 128"):
        create_backend(Params({"backend": {"p": config}}), "p")


def test_extract_writes_bottleneck_text_and_concat_reads_it(poets, tmp_path):
    from vidmem.store.concatenated import load_concat
    from vidmem.store.features import concat_features
    from vidmem.store.shards import write_arrays

    frames_dir, out = tmp_path / "frames", tmp_path / "features"
    frames_dir.mkdir()
    out.mkdir()
    write_arrays(frames_dir, [("video1", frames()), ("video2", frames()[::-1])])
    poets.extract_videos(frames_dir, out, batch_size=4, progress=False)
    texts = sorted((out / "video1").iterdir())
    assert [t.name for t in texts] == [f"frame{k:03d}.jpg_inception_v3.txt" for k in range(3)]
    assert not list(out.glob("*.npy"))
    concat_features(out, ["video1.webm", "video2.webm"], tmp_path / "all")
    features, videos = load_concat(tmp_path / "all")
    assert features.shape == (2, 3, 3) and videos == ["video1.webm", "video2.webm"]
    np.testing.assert_array_equal(features[1], features[0][::-1])
    # The output files are the backend's cached bottlenecks, byte for byte.
    cached = poets.bottleneck_path(poets.jpeg(frames()[1]))
    assert texts[1].read_bytes() == cached.read_bytes()
    good = cached.read_bytes()
    texts[1].write_text("0.1,0.2")  # truncated: concat refuses instead of guessing
    with pytest.raises(DataError, match=f"{texts[1].name}: truncated or corrupt bottleneck"):
        concat_features(out, ["video1.webm"], tmp_path / "x")
    assert cached.read_bytes() == good  # damaging an output did not reach the cache
