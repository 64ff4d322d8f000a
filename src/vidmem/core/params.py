"""Reading params.yaml with types checked.

`dvc exp run -S lr=1e-5` writes `lr: 1e-05`, which PyYAML (YAML 1.1) reads as the *string*
'1e-05'. We read with ruamel.yaml (YAML 1.2, where that is a float) and still cast and check
every value we use, so a wrong type fails with the key's name instead of deep inside torch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from vidmem.core.errors import ParamsError

DEFAULT_PARAMS = "params.yaml"
SectionT = TypeVar("SectionT")
_MISSING = object()


def load_params(path: str | os.PathLike = DEFAULT_PARAMS) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found: run stages from the project root")
    try:
        data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    except (YAMLError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    return data


def lookup(params: dict[str, Any], key: str, default: Any = _MISSING) -> Any:
    """Value at dotted `key` ('decode.n_frames'); `default` if absent, else ParamsError."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is not _MISSING:
                return default
            raise ParamsError(f"params.yaml: missing key '{key}'")
        node = node[part]
    return node


def as_float(value: Any, key: str, minimum: float | None = None,
             maximum: float | None = None) -> float:
    if isinstance(value, bool):
        raise ParamsError(f"params.yaml: '{key}' must be a number, got {value!r}")
    try:
        number = float(value)  # also accepts the string '1e-05' that -S can produce
    except (TypeError, ValueError):
        raise ParamsError(f"params.yaml: '{key}' must be a number, got {value!r}") from None
    if math.isnan(number) or (minimum is not None and number < minimum) or (
            maximum is not None and number > maximum):
        raise ParamsError(f"params.yaml: '{key}' = {value!r} is outside [{minimum}, {maximum}]")
    return number


def as_int(value: Any, key: str, minimum: int | None = None) -> int:
    number = as_float(value, key, minimum)
    if not float(number).is_integer():
        raise ParamsError(f"params.yaml: '{key}' must be a whole number, got {value!r}")
    return int(number)


def as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ParamsError(f"params.yaml: '{key}' must be true or false, got {value!r}")


def as_choice(value: Any, key: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ParamsError(f"params.yaml: '{key}' must be one of {list(choices)}, got {value!r}")
    return str(value)


def as_sha256(value: Any, key: str, of: str) -> str | None:
    """A pinned sha256 (64 hex digits) of `of`, or None (not pinned)."""
    pin = optional_str(value, key)
    if pin is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", pin):
        raise ParamsError(f"params.yaml: '{key}' must be the 64-hex-digit sha256 of {of}, "
                          f"or null; got {value!r}")
    return pin


def as_device(value: Any, key: str) -> str:
    """auto, cpu, cuda or cuda:N (which exists is checked when the device is opened)."""
    if not isinstance(value, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise ParamsError(f"params.yaml: '{key}' must be auto, cpu, cuda or cuda:N, "
                          f"got {value!r}")
    return value


def as_float_list(value: Any, key: str, length: int | None = None) -> list[float]:
    if not isinstance(value, list | tuple):
        raise ParamsError(f"params.yaml: '{key}' must be a list of numbers, got {value!r}")
    values = [as_float(v, key) for v in value]
    if length is not None and len(values) != length:
        raise ParamsError(f"params.yaml: '{key}' must have {length} numbers, got {len(values)}")
    return values


def required_str(value: Any, key: str, what: str) -> str:
    """A non-empty string param; ParamsError naming the key and `what` it must be otherwise."""
    if not isinstance(value, str) or not value:
        raise ParamsError(f"params.yaml: '{key}' must be {what}, got {value!r}")
    return value


def optional_str(value: Any, key: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ParamsError(f"params.yaml: '{key}' must be a string or null, got {value!r}")
    return value


BAD_INPUT_POLICIES = ("skip", "fail")
TARGETS = ("short-term_memorability", "long-term_memorability")


class DataConfig:
    """`data.*`: where the videos, labels and captions are, and the bad-input policy. Each key is
    read and checked when first used (then kept), so a stage that uses some of them (extract:
    captions, on_bad_input, format) reads, and the stage tracer records, only those."""

    def __init__(self, params: dict[str, Any]) -> None:
        self._params = params

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> DataConfig:
        return cls(params)

    @functools.cached_property
    def videos_dir(self) -> str:
        return str(lookup(self._params, "data.videos_dir"))

    @functools.cached_property
    def ground_truth(self) -> str:
        return str(lookup(self._params, "data.ground_truth"))

    @functools.cached_property
    def captions(self) -> str | None:
        return optional_str(lookup(self._params, "data.captions", None), "data.captions")

    @functools.cached_property
    def on_bad_input(self) -> str:
        return as_choice(lookup(self._params, "data.on_bad_input", "skip"), "data.on_bad_input",
                         BAD_INPUT_POLICIES)

    @functools.cached_property
    def format(self) -> str:
        """The data set's layout: a name in vidmem.data.groundtruth.LAYOUTS, which checks it
        where the data set is read (or `package.module:ClassName`)."""
        value = lookup(self._params, "data.format", "mediaeval2018")
        if not isinstance(value, str) or not value:
            raise ParamsError(f"params.yaml: 'data.format' must be a layout name, got {value!r}")
        return value

    def as_dict(self) -> dict[str, Any]:
        """Every key, read and checked now."""
        return {key: getattr(self, key) for key in
                ("videos_dir", "ground_truth", "captions", "on_bad_input", "format")}

    def with_captions(self, path: str | os.PathLike) -> DataConfig:
        """The same data set with another captions file (`vidmem predict --captions`: the
        scored videos' captions, in the data set's layout)."""
        data = self._params.get("data")
        return DataConfig({**self._params, "data": {**(data if isinstance(data, dict) else {}),
                                                    "captions": str(path)}})


def as_quality(value: Any, key: str) -> int:
    quality = as_int(value, key, 1)
    if quality > 100:
        raise ParamsError(f"params.yaml: '{key}' is a JPEG quality, 1 to 100; got {value!r}")
    return quality


@dataclass(frozen=True)
class FrameGeometry:
    """The geometry of a network's input: all decode needs to store frames at it (the input
    spec, vidmem.video.geometry.InputSpec, adds the value mapping, which decode never applies)."""

    height: int
    width: int
    resize: str  # squash | center_crop
    interpolation: str
    antialias: bool

    def geometry(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DecodeConfig:
    n_frames: int
    # Frames are scaled down so the shorter side is at most this (never up). None: `auto`, the
    # largest input of the listed backends (vidmem.backends.decode_config resolves it).
    short_side: int | None
    workers: int
    short_video: str
    timeout_s: float
    ffmpeg: str | None
    format: str = "tiff"  # how frames are stored (vidmem.store.framestore): tiff | webp | png | jpeg | npy
    jpeg_quality: int = 95
    # With `short_side: auto` and every listed frame backend sharing one input geometry, frames
    # are stored already resized to it, wherever that scales them down (never up): extract's
    # resize then has nothing to do, and the stored frames are as small as a backend can use.
    # Set by vidmem.backends.decode_config; None: frames keep their aspect ratio.
    input_geometry: FrameGeometry | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> DecodeConfig:
        workers = as_int(lookup(params, "decode.workers", 0), "decode.workers", 0)
        return cls(
            n_frames=as_int(lookup(params, "decode.n_frames"), "decode.n_frames", 1),
            short_side=None if lookup(params, "decode.short_side", "auto") == "auto" else
            as_int(lookup(params, "decode.short_side"), "decode.short_side", 8),
            workers=workers or (os.cpu_count() or 1),
            short_video=as_choice(lookup(params, "decode.short_video", "repeat"),
                                  "decode.short_video", ("repeat", "skip", "fail")),
            timeout_s=as_float(lookup(params, "decode.timeout_s", 120), "decode.timeout_s", 1),
            ffmpeg=optional_str(lookup(params, "decode.ffmpeg", None), "decode.ffmpeg"),
            format=as_choice(lookup(params, "decode.format", cls.format), "decode.format",
                             ("tiff", "webp", "png", "jpeg", "npy")),
            jpeg_quality=as_quality(lookup(params, "decode.jpeg_quality", cls.jpeg_quality),
                                    "decode.jpeg_quality"),
        )


def is_url(location: str | os.PathLike) -> bool:
    """Whether a location is an fsspec URL (`s3://bucket/prefix`, `gs://...`), not a path."""
    return "://" in str(location)


@dataclass(frozen=True)
class CacheConfig:
    """Where per-video results are cached (`cache.dir`: a folder, an fsspec URL such as
    `s3://bucket/prefix` that workers on several machines share, or None: no cache). Read once
    by each stage and passed down to whatever caches."""

    dir: str | None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> CacheConfig:
        folder = optional_str(lookup(params, "cache.dir", None), "cache.dir")
        # `dvc exp run --temp` and queued experiments run in a copy of the repo under
        # .dvc/tmp/exps, where the git-ignored cache folder does not exist; DVC_ROOT names the
        # repo they came from, so a relative cache.dir means the same folder in every run.
        root = os.environ.get("DVC_ROOT")
        if folder is not None and root and not os.path.isabs(folder) and not is_url(folder):
            folder = os.path.join(root, folder)
        return cls(dir=folder)


@dataclass(frozen=True)
class ConcatConfig:
    misalign_control: bool  # control experiment: pair each video with another's features
    seed: int

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ConcatConfig:
        return cls(
            misalign_control=as_bool(lookup(params, "concat.misalign_control", False),
                                     "concat.misalign_control"),
            seed=as_int(lookup(params, "base.seed"), "base.seed", 0),
        )


@dataclass(frozen=True)
class SplitConfig:
    train: float
    val: float
    test: float
    seed: int
    # random: the seeded train/val/test cut; official: the data set's own train and test parts
    # (validation carved from its train part), where the data set defines them.
    source: str = "random"

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> SplitConfig:
        sizes = [_split_size(lookup(params, f"split.{part}"), f"split.{part}")
                 for part in ("train", "val", "test")]
        return cls(*sizes, seed=as_int(lookup(params, "base.seed"), "base.seed", 0),
                   source=as_choice(lookup(params, "split.source", cls.source), "split.source",
                                    ("random", "official")))


def _positive(value: Any, key: str) -> float:
    number = as_float(value, key, 0)
    if number <= 0 or math.isinf(number):
        raise ParamsError(f"params.yaml: '{key}' = {value!r} must be a finite number > 0 "
                          "(e.g. 1e-4)")
    return number


def _split_size(value: Any, key: str) -> float:
    """A split part's size: a fraction in (0, 1], or a whole count of videos."""
    size = as_float(value, key, 0)
    if size > 1 and not size.is_integer():
        raise ParamsError(f"params.yaml: '{key}' = {value!r} is neither a fraction in [0, 1] "
                          "(e.g. 0.75) nor a whole count of videos (e.g. 6000)")
    return size


def parse_target(params: dict[str, Any]) -> str:
    """`target`: which score the chains learn and are evaluated on."""
    return as_choice(lookup(params, "target"), "target", TARGETS)


@dataclass(frozen=True)
class LSTMSettings:
    """The LSTM head's own settings: `lr`, `epochs`, `batch_size` (top level, so that
    `dvc exp run -S lr=1e-4` works verbatim) and `model.*` (reference v2.1: 1e-4, 100, 1000,
    1024 hidden units, 3 layers, no dropout). The head stage resolves them into
    data/heads/<chain>.json for the chains whose head is the LSTM, so no other chain depends
    on them."""

    lr: float
    epochs: int
    batch_size: int
    hidden_size: int
    num_layers: int
    dropout: float

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> LSTMSettings:
        return cls.from_values({field: lookup(params, key, 0.0 if field == "dropout" else _MISSING)
                                for field, key in LSTM_KEYS.items()})

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> LSTMSettings:
        """Checked values by field name; a bad one's error names its params.yaml key."""
        unknown = sorted(set(values) - set(LSTM_KEYS))
        missing = sorted(set(LSTM_KEYS) - set(values))
        if unknown or missing:
            raise ParamsError(f"LSTM settings: unknown {unknown}, missing {missing}; "
                              f"expected {list(LSTM_KEYS)}")
        return cls(lr=_positive(values["lr"], "lr"),
                   epochs=as_int(values["epochs"], "epochs", 1),
                   batch_size=as_int(values["batch_size"], "batch_size", 1),
                   hidden_size=as_int(values["hidden_size"], "model.hidden_size", 1),
                   num_layers=as_int(values["num_layers"], "model.num_layers", 1),
                   dropout=as_float(values["dropout"], "model.dropout", 0, 1))


# Each LSTM setting's params.yaml key.
LSTM_KEYS = {"lr": "lr", "epochs": "epochs", "batch_size": "batch_size",
             "hidden_size": "model.hidden_size", "num_layers": "model.num_layers",
             "dropout": "model.dropout"}


@dataclass(frozen=True)
class ChainConfig:
    """What every head's training reads, whichever the head: the target score, the seed, the
    training device and the shuffled-labels control (`target`, `base.seed`, `train.*`)."""

    target: str
    seed: int
    device: str
    shuffle_train_labels: bool
    data_on_device_mb: int | None = None  # see TrainConfig

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ChainConfig:
        return cls(
            target=parse_target(params),
            seed=as_int(lookup(params, "base.seed"), "base.seed", 0),
            device=as_device(lookup(params, "train.device", "auto"), "train.device"),
            shuffle_train_labels=as_bool(lookup(params, "train.shuffle_train_labels", False),
                                         "train.shuffle_train_labels"),
            data_on_device_mb=_auto_or_int(lookup(params, "train.data_on_device_mb", "auto"),
                                           "train.data_on_device_mb"),
        )


@dataclass(frozen=True)
class TrainConfig:
    """The LSTM's training run: its settings (`LSTMSettings`) and the chain's (`ChainConfig`)."""

    lr: float
    epochs: int
    batch_size: int
    target: str
    hidden_size: int
    num_layers: int
    dropout: float
    seed: int
    device: str
    shuffle_train_labels: bool
    # MB of standardized features training may keep on its device; None: auto (half the GPU's
    # free memory; none on the CPU, where features stream from disk).
    data_on_device_mb: int | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TrainConfig:
        return cls.of(LSTMSettings.from_params(params), ChainConfig.from_params(params))

    @classmethod
    def of(cls, lstm: LSTMSettings, chain: ChainConfig | TrainConfig) -> TrainConfig:
        return cls(**dataclasses.asdict(lstm), target=chain.target, seed=chain.seed,
                   device=chain.device, shuffle_train_labels=chain.shuffle_train_labels,
                   data_on_device_mb=chain.data_on_device_mb)


def _auto_or_int(value: Any, key: str) -> int | None:
    return None if value == "auto" else as_int(value, key, 0)


@dataclass(frozen=True)
class EvaluateConfig:
    bootstrap_resamples: int
    seed: int

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> EvaluateConfig:
        return cls(
            bootstrap_resamples=as_int(lookup(params, "evaluate.bootstrap_resamples", 1000),
                                       "evaluate.bootstrap_resamples", 0),
            seed=as_int(lookup(params, "base.seed"), "base.seed", 0),
        )


@dataclass(frozen=True)
class CVConfig:
    """`cv`: k-fold cross-validation beside the reference split. `folds` lists the folds, one
    entry each (DVC fans the per-fold stages out over this list): [] is off, [0, 1, 2, 3, 4] is
    5-fold. Each fold's validation part is `val_fraction` of the videos outside its test part.
    The test parts are seeded (`seed`: `cv.seed`, default `base.seed`, so the folds can move
    without moving the main split), read from `folds_file` (a `video,fold` CSV, as the field's
    protocols publish their folds), or with `source: official` the data set's own two parts,
    each the test part of one fold."""

    folds: int
    val_fraction: float
    seed: int
    folds_file: str | None = None
    source: str = "seeded"

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> CVConfig:
        folds = lookup(params, "cv.folds", [])
        if not isinstance(folds, list) or (folds and (folds != list(range(len(folds)))
                                                      or len(folds) < 2)):
            raise ParamsError(f"params.yaml: 'cv.folds' must be [] (off) or the fold numbers "
                              f"[0, 1, ..., k-1] with k >= 2, e.g. "
                              f"`dvc exp run -S 'cv.folds=[0,1,2,3,4]'`; got {folds!r}")
        seed = lookup(params, "cv.seed", None)
        source = as_choice(lookup(params, "cv.source", "seeded"), "cv.source",
                           ("seeded", "official"))
        if source == "official" and cv_folds_file(params):
            raise ParamsError("params.yaml: 'cv.source' is official and 'cv.folds_file' is set: "
                              "the folds come from one or the other; delete one of them")
        return cls(folds=len(folds), source=source,
                   val_fraction=as_float(lookup(params, "cv.val_fraction", 0.125),
                                         "cv.val_fraction", 0.01, 0.9),
                   seed=(as_int(lookup(params, "base.seed"), "base.seed", 0) if seed is None
                         else as_int(seed, "cv.seed", 0)),
                   folds_file=cv_folds_file(params))


def cv_folds_file(params: dict[str, Any]) -> str | None:
    """`cv.folds_file`: a `video,fold` CSV the folds take their test parts from, or None."""
    return optional_str(lookup(params, "cv.folds_file", None), "cv.folds_file")


def backend_names(params: dict[str, Any]) -> list[str]:
    names = lookup(params, "backends")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ParamsError("params.yaml: 'backends' must be a non-empty list of backend names")
    if "fusion" in names:
        raise ParamsError("params.yaml: 'backends' lists 'fusion', the name of the fusion "
                          "stage's results; rename that backend")
    return names


def backend_params(params: dict[str, Any], name: str) -> dict[str, Any]:
    """The `backend.<name>` section, which every backend stage reads."""
    section = lookup(params, f"backend.{name}", None)
    if not isinstance(section, dict):
        known = sorted(lookup(params, "backend", {}) or {})
        raise ParamsError(f"params.yaml: no section 'backend.{name}' for backend '{name}' "
                          f"(configured: {known}); add one or remove '{name}' from 'backends'")
    return section


@dataclass(frozen=True)
class ChainSpec:
    """One chain of `chains`: a head (`head`, as written: a registered name or an import path)
    trained on one listed backend's features (`backend`)."""

    name: str
    backend: str
    head: str


# A chain's name becomes stage names (`train@<name>`, `cv_train@<name>`) and file names.
_CHAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")


def chain_specs(params: dict[str, Any]) -> dict[str, ChainSpec]:
    """`chains`: name -> {backend, head}, each checked against `backends`, and every listed
    backend used. A backend may feed several chains (e.g. a ridge and an SVR on the captions);
    the fusion combines every chain."""
    raw = lookup(params, "chains", None)
    if not isinstance(raw, dict) or not raw:
        _check_no_heads_section(params)
        first = backend_names(params)[0]
        raise ParamsError("params.yaml: 'chains' must map each chain's name to its backend and "
                          f"head, e.g. chains: {{{first}: {{backend: {first}, head: lstm}}}} "
                          "(docs/heads.md)")
    chains = {name: chain_spec(params, name) for name in raw}
    backends = backend_names(params)
    unused = [b for b in backends if all(c.backend != b for c in chains.values())]
    if unused:
        raise ParamsError(f"params.yaml: no chain trains on backend(s) {unused}: add one under "
                          f"'chains' (e.g. {unused[0]}: {{backend: {unused[0]}, head: lstm}}) "
                          "or remove them from 'backends' (their features would be extracted "
                          "for nothing)")
    return chains


def chain_spec(params: dict[str, Any], name: str) -> ChainSpec:
    """`chains.<name>` alone (a chain's stages read their own entry only, so another chain's
    change re-runs none of them), its backend checked against `backends`."""
    key = f"chains.{name}"
    entry = lookup(params, key, None)
    if entry is None:
        _check_no_heads_section(params)
        raise ParamsError(f"params.yaml: no '{key}' (there are "
                          f"{list(lookup(params, 'chains', None) or {})}); add "
                          f"{name}: {{backend: <a listed backend>, head: lstm}} under 'chains'")
    if not isinstance(name, str) or not _CHAIN_NAME.match(name) or name == "fusion":
        raise ParamsError(f"params.yaml: chain name {name!r} must be letters, digits, _ and - "
                          "(it names stages and files), and not 'fusion' (the fused results' "
                          "name)")
    if not isinstance(entry, dict) or set(entry) != {"backend", "head"}:
        raise ParamsError(f"params.yaml: '{key}' must be {{backend: <a listed backend>, head: "
                          f"<lstm | ridge | svr | mlp | module:Class>}}, got {entry!r}")
    backend = required_str(entry["backend"], f"{key}.backend", "a listed backend's name")
    backends = backend_names(params)
    if backend not in backends:
        raise ParamsError(f"params.yaml: '{key}.backend' is {backend!r}, which 'backends' does "
                          f"not list ({backends}); add it there, pick one of them, or remove "
                          f"the chain (`dvc exp run -S '~{key}'`)")
    return ChainSpec(name, backend, required_str(entry["head"], f"{key}.head",
                                                 "a head: lstm | ridge | svr | mlp | module:Class"))


def _check_no_heads_section(params: dict[str, Any]) -> None:
    """`heads: {<backend>: <head>}`, the layout before chains, gets the new form spelled out."""
    heads = lookup(params, "heads", None)
    if heads is not None:
        example = ", ".join(f"{b}: {{backend: {b}, head: {h}}}"
                            for b, h in (heads.items() if isinstance(heads, dict) else []))
        raise ParamsError("params.yaml: 'heads' has become 'chains', where a backend may feed "
                          f"several heads: write chains: {{{example}}} and delete 'heads' "
                          "(docs/heads.md)")


class Params:
    """params.yaml, parsed once at a stage's edge (`vidmem.core.cli.run_stage`,
    `Params.load`) and passed down as typed sections: `params.train`, `params.decode`,
    `params.backend_section(name)`, ... Nothing below the edge looks a key up itself.

    Each section is parsed when first used, then kept, so a stage reads (and the stage tracer
    records) exactly the keys it uses, and a wrong value fails with its key's name on first
    use. Each key's default lives in its section's parser, and only there."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw
        self._sections: dict[str, dict[str, Any]] = {}
        self._parsed: dict[type, Any] = {}

    @classmethod
    def load(cls, path: str | os.PathLike = DEFAULT_PARAMS) -> Params:
        return cls(load_params(path))

    @functools.cached_property
    def data(self) -> DataConfig:
        return DataConfig(self._raw)

    @functools.cached_property
    def decode(self) -> DecodeConfig:
        """As written (`short_side: auto` unresolved: vidmem.backends.decode_config)."""
        return DecodeConfig.from_params(self._raw)

    @functools.cached_property
    def cache(self) -> CacheConfig:
        return CacheConfig.from_params(self._raw)

    @functools.cached_property
    def concat(self) -> ConcatConfig:
        return ConcatConfig.from_params(self._raw)

    @functools.cached_property
    def split(self) -> SplitConfig:
        return SplitConfig.from_params(self._raw)

    @functools.cached_property
    def train(self) -> TrainConfig:
        """The LSTM's settings and the chain's together (benchmarks, tests); stages read
        `chain` and their head's resolved settings (data/heads/<chain>.json) instead."""
        return TrainConfig.from_params(self._raw)

    @functools.cached_property
    def chain(self) -> ChainConfig:
        return ChainConfig.from_params(self._raw)

    @functools.cached_property
    def lstm(self) -> LSTMSettings:
        return LSTMSettings.from_params(self._raw)

    @functools.cached_property
    def evaluate(self) -> EvaluateConfig:
        return EvaluateConfig.from_params(self._raw)

    @functools.cached_property
    def cv(self) -> CVConfig:
        return CVConfig.from_params(self._raw)

    @functools.cached_property
    def cv_folds_file(self) -> str | None:
        """`cv.folds_file` alone: the scan stage hashes the file without parsing the rest of
        the section (CVConfig)."""
        return cv_folds_file(self._raw)

    @functools.cached_property
    def target(self) -> str:
        return parse_target(self._raw)

    @functools.cached_property
    def backends(self) -> list[str]:
        """The listed backends (`backends`): each is extracted once and feeds one or more
        chains."""
        return backend_names(self._raw)

    @functools.cached_property
    def chains(self) -> dict[str, ChainSpec]:
        """The chains (`chains`), by name: each a head on one listed backend."""
        return chain_specs(self._raw)

    def chain_spec(self, name: str) -> ChainSpec:
        """`chains.<name>` alone, checked (its stages depend on that entry only)."""
        return chain_spec(self._raw, name)

    def backend_section(self, name: str) -> dict[str, Any]:
        """The `backend.<name>` section as written: what vidmem.backends.backend_config parses
        into a BackendConfig."""
        if name not in self._sections:
            self._sections[name] = backend_params(self._raw, name)
        return self._sections[name]

    def parsed(self, section_type: type[SectionT]) -> SectionT:
        """A section type that parses itself (`section_type.from_params(raw)`, like the ones
        above: `DemoConfig`, a plug-in's), parsed once."""
        if section_type not in self._parsed:
            self._parsed[section_type] = section_type.from_params(self._raw)
        return self._parsed[section_type]
