"""What tests share: a tiny backend, loaded the way users load their own (`kind:
helpers:MeanColour`), model files the loaders read, and a stand-in for CUDA's runtime."""

import threading

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


class CudaRuntime:
    """The part of CUDA's runtime that page-locking touches, as `torch.cuda.cudart()` exposes it,
    with the runtime's rule that matters here: a refused call sets the last error of the host
    thread that made it, and PyTorch's check after each kernel launch reads (and clears) that
    thread's last error (C10_CUDA_KERNEL_LAUNCH_CHECK), failing the launch with it."""

    ALREADY_REGISTERED = 712  # cudaErrorHostMemoryAlreadyRegistered

    def __init__(self):
        self.locked: dict[int, int] = {}
        self.calls: list[tuple[str, int, int]] = []  # (call, thread, device)
        self.thread = threading.local()

    def cudaError(self, code):  # noqa: N802 - the binding's name
        return code

    def cudaGetErrorString(self, code):  # noqa: N802
        return {self.ALREADY_REGISTERED: "part or all of the requested memory range is "
                "already mapped"}.get(code, "unrecognized error code")  # CUDA's texts

    def set_device(self, index):
        self.thread.device = index

    def _call(self, name, status):
        self.calls.append((name, threading.get_ident(), getattr(self.thread, "device", 0)))
        if status:
            self.thread.last_error = status
        return status

    def cudaHostRegister(self, address, size, flags):  # noqa: N802
        refused = address in self.locked
        self.locked.setdefault(address, size)
        return self._call("register", self.ALREADY_REGISTERED if refused else 0)

    def cudaHostUnregister(self, address):  # noqa: N802
        return self._call("unregister", 0 if self.locked.pop(address, None) else 1)

    def launch_kernel(self):
        error, self.thread.last_error = getattr(self.thread, "last_error", 0), 0
        if error:
            raise RuntimeError(f"CUDA error {error}")
