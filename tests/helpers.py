"""A tiny backend for tests, loaded the way users load their own: `kind: helpers:MeanColour`."""

import numpy as np
import torch

from vidmem.backends.base import Backend


class MeanColour(Backend):
    """Features = per-channel mean and max of the values fed to the 'network'."""

    feature_dim = 6
    weights = "none (test backend)"
    expected_range = (0.0, 1.0)

    def _extract(self, frames: np.ndarray) -> np.ndarray:
        x = self.spec.to_network_values(torch.from_numpy(frames))
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1).numpy()


def save_input_stats_module(path) -> None:
    """A SavedModel 'feature-vector module' whose 4 features are min, max, mean and std of its
    input: a network that reports what it was fed."""
    from vidmem.backends._tf_import import import_tensorflow

    tf = import_tensorflow()

    class InputStats(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def __call__(self, images):
            axes = [1, 2, 3]
            return tf.stack([tf.reduce_min(images, axes), tf.reduce_max(images, axes),
                             tf.reduce_mean(images, axes), tf.math.reduce_std(images, axes)],
                            axis=1)

    tf.saved_model.save(InputStats(), str(path))


def save_poets_graph(path, size: int, subtract: float = 128.0) -> None:
    """A frozen GraphDef with the classic TF-for-Poets tensor names: JPEG bytes at
    DecodeJpeg/contents:0 → decode → bilinear resize → (x-128)/128 at Mul:0 → 'network' (input
    min, max, mean) at pool_3/_reshape:0."""
    from vidmem.backends._tf_import import import_tensorflow

    tf = import_tensorflow()

    graph = tf.Graph()
    with graph.as_default():
        contents = tf.compat.v1.placeholder(tf.string, shape=[], name="DecodeJpeg/contents")
        decoded = tf.io.decode_jpeg(contents, channels=3)
        expanded = tf.expand_dims(tf.cast(decoded, tf.float32), 0)
        resized = tf.compat.v1.image.resize_bilinear(expanded, [size, size])
        normalized = tf.multiply(tf.subtract(resized, subtract), 1 / 128.0, name="Mul")
        axes = [1, 2, 3]
        stats = tf.stack([tf.reduce_min(normalized, axes), tf.reduce_max(normalized, axes),
                          tf.reduce_mean(normalized, axes)], axis=1)
        tf.reshape(stats, [1, 3], name="pool_3/_reshape")
    path.write_bytes(graph.as_graph_def().SerializeToString())
