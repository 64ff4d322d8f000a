"""Feature backends and how params.yaml names them.

A backend is one class implementing `vidmem.backends.base.Backend`. `backend.<name>.kind` in
params.yaml picks the class: a registered kind (`register_backend`, `list_backends`; the
built-in ones below), or `package.module:ClassName` for a backend that lives anywhere importable
(adding one needs no edit here). A registered kind declares its facts (the class's import path,
whether it reads frames, fits on the training split, reads captions), so the stages that only
need those (decode's input sizes, normalize, predict) never import the backend's module; a
contract test checks every registered kind's facts against its class.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vidmem.backends.base import Backend
from vidmem.core.errors import DataError, ParamsError
from vidmem.core.params import DecodeConfig, FrameGeometry, Params
from vidmem.core.registry import Registry
from vidmem.video.geometry import InputSpec


@dataclass(frozen=True)
class BackendKind:
    """A registered backend kind: where its class is (imported only when a backend is built or
    its class is asked for), and the facts other stages need without importing it."""

    kind: str
    target: str  # "package.module:ClassName"
    reads_frames: bool  # the class's `uses_frames`
    fits_on_split: bool = False  # refit per cross-validation fold (TF-IDF)
    reads_captions: bool = False  # `vidmem predict --captions` feeds it
    # The input its weights were trained on (a `backend.<name>.input` mapping), given the
    # section (a torch backend's depends on its model) and where it is, for errors; None:
    # params must say.
    default_input: Callable[[dict[str, Any], str], dict[str, Any]] | None = \
        dataclasses.field(default=None, compare=False)

    def input_for(self, section: dict[str, Any], where: str) -> dict[str, Any] | None:
        return None if self.default_input is None else self.default_input(section, where)


BACKENDS: Registry[BackendKind] = Registry("backend kind")


def register_backend(kind: str, target: str, *, reads_frames: bool, fits_on_split: bool = False,
                     reads_captions: bool = False,
                     default_input: Callable[[dict[str, Any], str], dict[str, Any]] | None = None,
                     ) -> BackendKind:
    """Make `backend.<name>.kind: <kind>` build the class at `target` ("module:Class");
    `default_input(section)`: the input its weights expect, which params only override."""
    facts = BackendKind(kind, target, reads_frames, fits_on_split, reads_captions, default_input)
    BACKENDS.add(kind, target, facts)
    return facts


def list_backends() -> list[str]:
    """The registered backend kinds."""
    return BACKENDS.names()


# What each network's weights were trained on, as timm's pretrained_cfg carries it: the input a
# backend gets unless `backend.<name>.input` overrides keys. Written here, not beside the
# networks, so that decode learns the geometry without importing torch or TensorFlow; a contract
# test builds each network and checks its value range against these.
_SQUASH = {"resize": "squash", "interpolation": "bilinear", "antialias": True}
TORCH_MODEL_INPUTS: dict[str, dict[str, Any]] = {
    "efficientnet_lite0": {"size": 224, **_SQUASH, "value": "symmetric_range"},  # TF Lite: [-1, 1]
    "inception_v3": {"size": 299, **_SQUASH, "value": "imagenet"},  # torchvision's preset
    # OpenCLIP's preprocess_cfg: the shorter side to 224 (bicubic), the centre 224² cut out.
    "clip_vit_b32": {"size": 224, "resize": "center_crop", "interpolation": "bicubic",
                     "antialias": True, "value": "clip"},
}
TFHUB_INPUT = {"size": 299, **_SQUASH, "value": "unit_range"}  # the hub image-module convention
# retrain.py's graph: plain ResizeBilinear, (x-128)/128 inside the graph (Sub, Mul).
POETS_INPUT = {"size": 299, **_SQUASH, "antialias": False, "value": "tf_inception"}

# Imported lazily, so a torch-only run never imports TensorFlow.


def _torch_input(section: dict[str, Any], where: str) -> dict[str, Any]:
    model = section.get("model")
    if not isinstance(model, str) or model not in TORCH_MODEL_INPUTS:
        raise ParamsError(f"params.yaml: '{where}.model' = {model!r} is not one of "
                          f"{sorted(TORCH_MODEL_INPUTS)}")
    return TORCH_MODEL_INPUTS[model]


register_backend("torch", "vidmem.backends.torch_backbones:TorchBackbone", reads_frames=True,
                 default_input=_torch_input)
register_backend("precomputed", "vidmem.backends.precomputed:Precomputed", reads_frames=False)
register_backend("tfhub", "vidmem.backends.tfhub:TFHubModule", reads_frames=True,
                 default_input=lambda section, where: TFHUB_INPUT)
register_backend("poets", "vidmem.backends.poets:PoetsBottleneck", reads_frames=True,
                 default_input=lambda section, where: POETS_INPUT)
register_backend("captions", "vidmem.backends.captions:CaptionsBackend", reads_frames=False,
                 fits_on_split=True, reads_captions=True)
register_backend("sentence", "vidmem.backends.captions:SentenceBackend", reads_frames=False,
                 reads_captions=True)
register_backend("stack", "vidmem.backends.stacked:StackedCaptions", reads_frames=False,
                 fits_on_split=True, reads_captions=True)


def backend_class(kind: str, key: str = "backend.<name>.kind") -> type[Backend]:
    """The class of a registered kind, or of a `package.module:ClassName` kind (`key`: where
    params named it, for errors)."""
    return BACKENDS.resolve(kind, Backend, key)


@dataclass(frozen=True)
class BackendConfig:
    """One backend's params, parsed once at the stage's edge: its name, its kind's facts, its
    `backend.<name>` section (what the backend class reads and keys its cache with) and, for a
    frame backend, its input spec. Everything below takes this, not params.yaml."""

    name: str
    facts: BackendKind
    section: dict[str, Any]
    spec: InputSpec | None  # None: the backend reads no frames

    def backend_class(self) -> type[Backend]:
        """The class (its module is imported now)."""
        return backend_class(self.facts.kind)

    def build(self, cache_root: str | os.PathLike | None = None,
              spec: InputSpec | None = None) -> Backend:
        """The backend itself (`spec` overrides the declared input; `cache_root` is the
        project's `cache.dir`)."""
        return self.backend_class()(self.name, spec or self.spec, self.section, cache_root)

    def weights_input_range(self) -> tuple[float, float] | None:
        """The value range its weights expect, without loading them."""
        return self.backend_class().weights_input_range(self.name, self.section)


def backend_config(params: Params, name: str) -> BackendConfig:
    """Backend `name` as params.yaml configures it: the one place its section is parsed."""
    section = params.backend_section(name)
    kind = section.get("kind")
    if not isinstance(kind, str):
        raise ParamsError(f"params.yaml: 'backend.{name}.kind' is missing")
    if kind in BACKENDS:
        facts = BACKENDS.facts(kind)
    else:  # `module:Class`: the facts are the class's
        cls = backend_class(kind, f"backend.{name}.kind")
        facts = BackendKind(kind, kind, cls.uses_frames, cls.fits_on_split, cls.reads_captions)
    spec = None
    if facts.reads_frames:
        default, given = facts.input_for(section, f"backend.{name}"), section.get("input")
        if given is not None and not isinstance(given, dict):
            raise ParamsError(f"params.yaml: 'backend.{name}.input' must be a mapping")
        if default is None and given is None:
            raise ParamsError(f"params.yaml: 'backend.{name}.input' is missing: kind {kind!r} "
                              "declares no input, so give its size and value (docs/backends.md)")
        # Params override the registry's input key by key (a `value` replaces it whole).
        spec = InputSpec.from_params({**(default or {}), **(given or {})},
                                     f"backend.{name}.input")
    return BackendConfig(name, facts, section, spec)


def backend_facts(params: Params, name: str) -> BackendKind:
    """What backend `name` is: from the registry (no import) for a registered kind; for a
    `module:Class` kind, read from the class."""
    return backend_config(params, name).facts


def input_spec(params: Params, name: str) -> InputSpec | None:
    """The backend's declared input; None for a backend that takes no frames."""
    return backend_config(params, name).spec


DEFAULT_SHORT_SIDE = 224  # when no listed backend reads frames (nothing is decoded then)


def decode_config(params: Params) -> DecodeConfig:
    """The decode section, with `short_side: auto` resolved to the largest input side any listed
    backend needs (224 for EfficientNet-Lite0, 299 for Inception V3): frames are never kept
    larger than some backend can use. When every listed frame backend has the same input
    geometry (size, squash or crop, interpolation), frames are stored resized to it
    (`input_geometry`), so each is resized once, by decode, and stored at the size it is used."""
    config = params.decode
    if config.short_side is not None:
        return config
    specs = [spec for name in params.backends
             if (spec := backend_config(params, name).spec) is not None]
    shared = specs[0] if specs and all(
        spec.geometry() == specs[0].geometry() for spec in specs) else None
    return dataclasses.replace(
        config, short_side=max((max(s.height, s.width) for s in specs), default=DEFAULT_SHORT_SIDE),
        input_geometry=None if shared is None else shared.frame_geometry())


def decode_geometry(params: Params) -> dict[str, Any]:
    """What decode takes from the listed backends (the geometry stage writes it, so that decode
    depends on the geometry, not on every backend's section): the resolved `short_side` and the
    shared input geometry (size, resize, interpolation: not the value mapping, which decode never
    applies), or None."""
    config = decode_config(params)
    shared = config.input_geometry
    return {"short_side": config.short_side,
            "input_geometry": None if shared is None else shared.geometry()}


def with_geometry(config: DecodeConfig, geometry: dict[str, Any],
                  where: str | os.PathLike) -> DecodeConfig:
    """`config` (params.yaml's decode section) with the geometry stage's output (`where`)."""
    try:
        spec = geometry["input_geometry"]
        short_side = geometry["short_side"]
        if not isinstance(short_side, int) or isinstance(short_side, bool) or short_side < 8:
            raise ValueError(f"short_side {short_side!r}")
        shared = None if spec is None else FrameGeometry(**spec)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{where}: not a geometry stage output ({exc}); re-run `dvc repro`") \
            from exc
    return dataclasses.replace(config, short_side=short_side, input_geometry=shared)


def create_backend(params: Params, name: str, spec: InputSpec | None = None,
                   cache_root: str | os.PathLike | None = None) -> Backend:
    """The backend `name` as configured in params.yaml (`spec` overrides its input section;
    `cache_root` is the project's `cache.dir`, see CacheConfig): `backend_config(...).build`."""
    return backend_config(params, name).build(cache_root, spec)
