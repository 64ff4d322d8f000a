"""One registry mechanism (vidmem.core.registry) for backend kinds, torch models and heads,
with a contract test over every entry (as timm tests every model in `list_models()`)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from vidmem.backends import (
    BACKENDS,
    BackendKind,
    backend_class,
    backend_facts,
    decode_config,
    list_backends,
)
from vidmem.backends.base import Backend
from vidmem.core.params import Params, load_params
from vidmem.video.geometry import InputSpec

from conftest import REPO, documented_backends, pinned_or_skip

BACKEND_MODULES = ("vidmem.backends.torch_backbones", "vidmem.backends.tfhub",
                   "vidmem.backends.poets", "vidmem.backends.captions",
                   "vidmem.backends.precomputed", "vidmem.backends.sentences")


@pytest.mark.parametrize("kind", list_backends())
def test_every_registered_kind_declares_the_facts_of_its_class(kind):
    facts = BACKENDS.facts(kind)
    cls = backend_class(kind)
    assert issubclass(cls, Backend) and facts.kind == kind
    assert (facts.reads_frames, facts.fits_on_split, facts.reads_captions) == \
        (cls.uses_frames, cls.fits_on_split, cls.reads_captions), kind
    if facts.reads_frames:  # what normalize checks the fed values against
        assert cls.expected_range is not None or "weights_input_range" in vars(cls), kind


def registries():
    from vidmem.backends.torch_backbones import MODELS
    from vidmem.learn.chain import HEADS

    return {"backend kind": BACKENDS, "torch model": MODELS, "head": HEADS}


@pytest.mark.parametrize("what", ["backend kind", "torch model", "head"])
def test_every_registry_is_the_one_mechanism_and_every_entry_loads(what):
    """Backend kinds, torch models and heads are all a `Registry`: each entry loads (its module
    imported only now) to something callable, and an unknown name names the params key it came
    from and every registered name."""
    from vidmem.core.errors import ParamsError
    from vidmem.core.registry import Registry

    registry = registries()[what]
    assert isinstance(registry, Registry) and registry.what == what and registry.names()
    for name in registry.names():
        assert callable(registry.load(name)), name
    with pytest.raises(ParamsError, match=rf"'backend.b.x': unknown {what} 'nope': the "
                                          rf"registered ones are \[.*'{registry.names()[0]}'"):
        registry.entry("nope", "backend.b.x")


def test_the_builtin_kinds_are_registered():
    assert set(list_backends()) >= {"torch", "precomputed", "tfhub", "poets", "captions",
                                    "sentence"}


def test_a_backend_anywhere_importable_has_its_facts_read_from_its_class():
    section = {"kind": "helpers:MeanColour", "input": {"size": 8, "value": "unit_range"}}
    facts = backend_facts(Params({"backend": {"b": section}}), "b")
    assert facts == BackendKind("helpers:MeanColour", "helpers:MeanColour", True, False, False)


def test_decode_learns_input_sizes_without_importing_any_backend_module():
    """decode.short_side: auto reads the listed backends' input geometry; the registry's facts
    say which backends read frames, so no backend module (torch models, TensorFlow) loads."""
    code = ("import sys; from vidmem.core.params import Params, load_params; "
            "from vidmem.backends import decode_config; "
            "params = load_params('params.yaml'); "
            f"params['backend'].update({documented_backends()!r}); "
            "params['backends'] = ['efficientnet_lite0', 'captions', 'tfhub_inception_v3', "
            "'poets_inception_v3']; "
            "print(decode_config(Params(params)).short_side); "
            f"print(sorted(m for m in sys.modules if m.startswith({BACKEND_MODULES!r}) "
            "or m.split('.')[0] in ('tensorflow', 'timm', 'sentence_transformers')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["299", "[]"]
    params = load_params(REPO / "params.yaml")
    assert decode_config(Params(params)).short_side == 224
    assert [backend_facts(Params(params), name).reads_frames
            for name in params["backends"]] == [True, False]


def spec(size: int, value: str) -> InputSpec:
    return InputSpec.from_params({"size": size, "value": value}, "test.input")


@pytest.mark.parametrize("model", sorted(__import__(
    "vidmem.backends.torch_backbones", fromlist=["MODELS"]).MODELS.names()))
def test_every_registered_torch_model_builds_extracts_and_declares_its_range(model):
    from vidmem.backends import TORCH_MODEL_INPUTS
    from vidmem.backends.torch_backbones import TorchBackbone

    config = {"kind": "torch", "model": model, "weights": "random", "device": "cpu"}
    # The size its weights take (a ViT's position embeddings fix it; CNNs take any).
    size = TORCH_MODEL_INPUTS[model]["size"]
    backend = TorchBackbone("b", spec(size, "symmetric_range"), config)
    assert backend.random_weights  # labelled so, everywhere
    frames = np.random.default_rng(0).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    features = backend.extract(frames)
    assert features.shape == (2, backend.feature_dim) and np.isfinite(features).all()
    # The range normalize checks without building the model is the one the built model reports.
    assert TorchBackbone.weights_input_range("b", config) == backend.expected_range


@pytest.mark.parametrize("model", sorted(__import__(
    "vidmem.backends.torch_backbones", fromlist=["MODELS"]).MODELS.names()))
def test_each_torch_models_registry_input_is_what_its_weights_expect(model):
    """The registry entry's input (timm's pretrained_cfg) is the one source: a backend without
    `input` gets it, and its value preset maps [0, 255] onto the range the model declares."""
    from vidmem.backends import TORCH_MODEL_INPUTS, backend_config
    from vidmem.backends.torch_backbones import MODELS, TorchConfig

    assert set(TORCH_MODEL_INPUTS) == set(MODELS.names())
    section = {"kind": "torch", "model": model, "weights": "random"}
    spec_ = backend_config(Params({"backend": {"b": section}}), "b").spec
    assert spec_ == InputSpec.from_params(TORCH_MODEL_INPUTS[model], "registry")
    low, high = spec_.value_bounds
    expected_low, expected_high = MODELS.facts(model).input_range(
        TorchConfig.from_section(section, "b"))
    slack = 0.01 * (expected_high - expected_low)
    # Inside the range the weights expect, and covering nearly all of it.
    assert expected_low - slack <= low and high <= expected_high + slack, (low, high)
    assert high - low >= 0.9 * (expected_high - expected_low), (low, high)


def test_params_override_the_registry_input_key_by_key():
    from vidmem.backends import TORCH_MODEL_INPUTS, backend_config

    params = load_params(REPO / "params.yaml")
    section = params["backend"]["efficientnet_lite0"]
    assert "input" not in section  # params.yaml holds only what differs from the registry
    default = backend_config(Params(params), "efficientnet_lite0").spec
    assert default == InputSpec.from_params(TORCH_MODEL_INPUTS["efficientnet_lite0"], "r")
    section["input"] = {"value": "unit_range"}
    changed = backend_config(Params(params), "efficientnet_lite0").spec
    assert changed.geometry() == default.geometry() and changed.values != default.values
    assert changed == InputSpec.from_params(
        {**TORCH_MODEL_INPUTS["efficientnet_lite0"], "value": "unit_range"}, "r")


def test_params_yaml_holds_at_most_40_keys_each_commented():
    """What a user changes, each with a comment on its line or the line after (a section
    header's comment covers its keys only where the section has one key)."""
    params = load_params(REPO / "params.yaml")

    def leaves(node, prefix=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from leaves(value, f"{prefix}{key}.")
        else:
            yield prefix[:-1]

    assert len(list(leaves(params))) <= 40
    import re

    uncommented = [line for line in (REPO / "params.yaml").read_text().splitlines()
                   if re.match(r"^\s*[a-z_]+: [^#]+$", line)]
    assert uncommented == [], "add a one-line comment to each key"
    # Backends that are not listed are not in params.yaml; their sections are in the docs.
    assert set(params["backend"]) == set(params["backends"])


@pytest.mark.parametrize("name", sorted(documented_backends()))
def test_every_documented_backend_section_parses(name):
    from vidmem.backends import POETS_INPUT, TFHUB_INPUT, TORCH_MODEL_INPUTS, backend_config

    section = documented_backends()[name]
    config = backend_config(Params({"backend": {name: section}}), name)
    registry = {"torch": TORCH_MODEL_INPUTS.get(section.get("model")), "tfhub": TFHUB_INPUT,
                "poets": POETS_INPUT}[section["kind"]]
    assert config.spec == InputSpec.from_params(registry, name)


def test_a_backend_is_parsed_once_into_what_builds_it():
    """backend_config reads `backend.<name>` once (kind, facts, input spec); building and the
    normalize stage's range use that, not params.yaml again."""
    from vidmem.backends import backend_config
    from vidmem.core.trace import TrackedParams

    read: set[str] = set()
    params = TrackedParams(load_params(REPO / "params.yaml"), read)
    config = backend_config(Params(params), "efficientnet_lite0")
    assert config.facts is BACKENDS.facts("torch") and config.spec.height == 224
    assert config.weights_input_range() == (-1.0, 1.0)
    backend = config.build()
    assert backend.spec is config.spec and backend.config is config.section
    assert {key.split(".")[0] for key in read} == {"backend"}
    assert all(key.startswith("backend.efficientnet_lite0") for key in read)


def test_clip_takes_the_preprocessing_its_weights_carry_and_loads_a_weights_file(tmp_path):
    """#35: the CLIP image tower's registry input is OpenCLIP's own preprocess_cfg (size,
    bicubic shortest-side resize and centre crop, CLIP mean/std); its weights load from an
    OpenCLIP state dict file (safetensors or torch) and give the features of the network that
    saved them; `hub:` reads only the local Hugging Face cache and says what to do when the
    weights are not there."""
    open_clip = pinned_or_skip("open_clip")
    import torch
    from safetensors.torch import save_file

    from vidmem.backends import TORCH_MODEL_INPUTS
    from vidmem.backends.torch_backbones import TorchBackbone
    from vidmem.core.errors import VidmemError

    torch.manual_seed(3)
    reference = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    cfg = reference.visual.preprocess_cfg
    entry = TORCH_MODEL_INPUTS["clip_vit_b32"]
    assert (entry["size"],) * 2 == tuple(cfg["size"]) and entry["interpolation"] == cfg[
        "interpolation"] and cfg["resize_mode"] == "shortest" and entry["resize"] == "center_crop"
    preset = InputSpec.from_params(entry, "clip")
    assert preset == InputSpec.from_params({**entry, "value": {"mean": list(cfg["mean"]),
                                                               "std": list(cfg["std"])}}, "clip")
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()},
              tmp_path / "open_clip_model.safetensors")
    torch.save(reference.state_dict(), tmp_path / "open_clip_pytorch_model.bin")
    frames = np.random.default_rng(1).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    with torch.inference_mode():
        expected = reference.encode_image(preset.to_network_values(
            torch.from_numpy(frames))).numpy()
    for weights in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        config = {"kind": "torch", "model": "clip_vit_b32", "device": "cpu",
                  "weights": str(tmp_path / weights)}
        backend = TorchBackbone("clip", preset, config)
        assert not backend.random_weights and backend.feature_dim == 512
        np.testing.assert_allclose(backend.extract(frames), expected, rtol=1e-4, atol=1e-5)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HOME", str(tmp_path / "empty-hub"))
        with pytest.raises(VidmemError, match="not in the Hugging Face cache.*downloads nothing"):
            TorchBackbone("clip", preset, {"kind": "torch", "model": "clip_vit_b32",
                                           "weights": "hub:laion2b_s34b_b79k"})
