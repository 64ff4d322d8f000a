"""One Keras network exported both ways — a SavedModel for tfhub, a frozen GraphDef with the
classic tensor names for poets — gives the same features for the same frames when both backends
are set to the same normalization, (x-128)/128. The tolerance, 5% of the features' largest
magnitude, covers the JPEG round trip the poets flow makes (quality 100, 4:4:4 chroma)."""

import numpy as np
import pytest

from vidmem.core.params import Params

from conftest import pinned_or_skip, tensorflow_or_skip

tf = tensorflow_or_skip()
pinned_or_skip("tensorflow_hub")

SIZE = 16


def keras_network():
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.layers.Input((SIZE, SIZE, 3)),
                             keras.layers.Conv2D(8, 3, activation="relu"),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(5)])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    root = tmp_path_factory.mktemp("export")
    model = keras_network()
    signature = tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32)
    function = tf.function(lambda x: model(x, training=False), input_signature=[signature])
    module = tf.Module()
    module.model = model  # track the variables the function captures
    module.__call__ = function
    tf.saved_model.save(module, str(root / "hub"))

    frozen = convert_variables_to_constants_v2(function.get_concrete_function())
    network = frozen.graph.as_graph_def()
    graph = tf.Graph()
    with graph.as_default():
        contents = tf.compat.v1.placeholder(tf.string, shape=[], name="DecodeJpeg/contents")
        decoded = tf.expand_dims(tf.cast(tf.io.decode_jpeg(contents, channels=3), tf.float32), 0)
        resized = tf.compat.v1.image.resize_bilinear(decoded, [SIZE, SIZE])
        normalized = tf.multiply(tf.subtract(resized, 128.0), 1 / 128.0, name="Mul")
        (output,) = tf.compat.v1.import_graph_def(
            network, input_map={frozen.inputs[0].name: normalized},
            return_elements=[frozen.outputs[0].name], name="net")
        tf.reshape(output, [1, -1], name="pool_3/_reshape")
    (root / "graph.pb").write_bytes(graph.as_graph_def().SerializeToString())
    return root


def test_tfhub_and_poets_agree_on_the_same_network(exported, tmp_path):
    from vidmem.backends import create_backend

    value = {"subtract": 128, "divide": 128}
    params = {"backend": {
        "hub": {"kind": "tfhub", "handle": str(exported / "hub"),
                "input": {"size": SIZE, "value": value}},
        "poets": {"kind": "poets", "graph": str(exported / "graph.pb"), "jpeg_quality": 100,
                  "bottleneck_dir": str(tmp_path / "b"), "input": {"size": SIZE, "value": value}},
    }}
    rng = np.random.default_rng(0)
    # Smooth images (JPEG keeps them nearly intact), like video frames rather than noise.
    base = rng.integers(0, 255, (4, 4, 4, 3)).astype(np.float32)
    frames = np.repeat(np.repeat(base, 4, axis=1), 4, axis=2).astype(np.uint8)
    hub_features = create_backend(Params(params), "hub").extract(frames)
    poets_features = create_backend(Params(params), "poets").extract(frames)
    assert hub_features.shape == poets_features.shape == (4, 5)
    scale = np.abs(hub_features).max()
    np.testing.assert_allclose(poets_features, hub_features, atol=0.05 * scale)
    # ... and differ clearly under the other convention: the tolerance is not vacuous.
    params["backend"]["hub"]["input"]["value"] = {"range": [0, 1]}
    other = create_backend(Params(params), "hub").extract(frames)
    assert np.abs(other - hub_features).max() > 0.2 * scale
