"""Import TensorFlow safely next to PyTorch.

Loading triton (which torch/timm pull in) *after* TensorFlow segfaults the process (seen with
TF 2.21 and torch 2.14.1 / triton 3.8 in one interpreter); loading it first is fine. Stage
scripts use one backend each, but tests, notebooks and `vidmem predict` may mix them.
"""

from __future__ import annotations

import contextlib
import os
from types import ModuleType


def import_tensorflow() -> ModuleType:
    # tensorflow-hub's KerasLayer needs Keras 2 (tf-keras); with Keras 3 it fails with "Only
    # instances of `keras.Layer` can be added". Both must be set before TensorFlow is imported.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with contextlib.suppress(ImportError):
        import triton  # noqa: F401 - load order matters, see the module docstring
    import tensorflow as tf

    return tf


def tensorflow_numerics(tf: ModuleType) -> dict[str, str]:
    """Where TensorFlow will run the network (it places ops on a GPU whenever it sees one), in
    the shape of `vidmem.core.devices.numerics`. TF backends always run in float32."""
    return {"device": "gpu" if tf.config.list_physical_devices("GPU") else "cpu",
            "precision": "false"}
