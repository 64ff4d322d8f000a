"""Several caption backends' features side by side as one backend: TF-IDF and a sentence
embedding stacked into one vector per video, one chain, one head.

params.yaml:
    backend:
      text:
        kind: stack
        parts:                       # caption backends (kind captions / sentence), in order
          tfidf: {kind: captions, ngram_max: 2, max_features: null}
          sentence: {kind: sentence}
    heads:
      text: ridge

On the real MediaEval 2018 labels (5-fold, benchmarks/quality.json) TF-IDF + MiniLM stacked with
ridge beats either alone with ridge by about 0.03 short-term. Each part is the backend its
section builds (TF-IDF fit on the training split only); every part's row is unit length, so
neither outweighs the other. Its state is its parts' states.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from scipy import sparse
from tqdm import tqdm

from vidmem.backends.base import Backend
from vidmem.backends.captions import CHUNK, CaptionsBackend
from vidmem.backends.text import SparseRows
from vidmem.core.errors import DataError, ParamsError
from vidmem.core.files import video_key
from vidmem.data.dataset import Dataset
from vidmem.video.geometry import InputSpec


class StackedCaptions(CaptionsBackend):
    """Caption backends' features concatenated per video (`parts`, in order)."""

    weights = "stacked caption features"

    def __init__(self, name: str, spec: InputSpec | None, config: dict[str, Any],
                 cache_root: str | os.PathLike | None = None) -> None:
        Backend.__init__(self, name, spec, config, cache_root)
        from vidmem.backends import backend_class

        parts = config.get("parts")
        if not isinstance(parts, dict) or len(parts) < 2:
            raise ParamsError(f"params.yaml: 'backend.{name}.parts' must map two or more part "
                              "names to caption backend sections, e.g. {tfidf: {kind: captions},"
                              " sentence: {kind: sentence}}")
        self.parts: dict[str, CaptionsBackend] = {}
        for part, section in parts.items():
            where = f"backend.{name}.parts.{part}"
            kind = section.get("kind") if isinstance(section, dict) else None
            cls = backend_class(kind, f"{where}.kind") if isinstance(kind, str) else None
            if cls is None or not issubclass(cls, CaptionsBackend):
                raise ParamsError(f"params.yaml: '{where}' must be a caption backend section "
                                  f"(kind: captions or sentence), got {section!r}")
            self.parts[part] = cls(f"{name}.{part}", None, section, cache_root)
        self._caption_backend_init()

    def use_dataset(self, dataset: Dataset, split_file: str | os.PathLike | None) -> None:
        super().use_dataset(dataset, split_file)
        for part in self.parts.values():
            part.use_dataset(dataset, split_file)

    def captions(self) -> dict[str, Any]:
        captions = super().captions()
        for part in self.parts.values():  # read once, shared
            part._captions = captions
        return captions

    def fit(self, train_videos: Sequence[str]) -> None:
        self.captions()
        for part in self.parts.values():
            part.fit(train_videos)

    def state(self) -> dict[str, Any] | None:
        states = {name: part.state() for name, part in self.parts.items()}
        if any(state is None for state in states.values()):
            return None  # a part still to fit
        return {"kind": "stack", "parts": states}

    def load_state(self, state: Any, source: str) -> None:
        if not isinstance(state, dict) or state.get("kind") != "stack" \
                or not isinstance(state.get("parts"), dict) \
                or set(state["parts"]) != set(self.parts):
            raise DataError(f"{source}: backend_state is not the state of a stack of "
                            f"{sorted(self.parts)}; retrain it with `dvc repro`")
        for name, part in self.parts.items():
            part.load_state(state["parts"][name], source)

    def _matrix(self, videos: Sequence[str]) -> sparse.csr_matrix:
        """The videos' stacked rows, sparse (it sets `feature_dim`: a sentence part knows its
        width only once it has embedded)."""
        self.captions()
        blocks = []
        for part in self.parts.values():
            rows = part.features_of(videos)
            blocks.append(rows.matrix if isinstance(rows, SparseRows)
                          else sparse.csr_matrix(np.asarray(rows)[:, 0, :]))
        matrix = sparse.hstack(blocks, format="csr", dtype=np.float32)
        self.feature_dim = int(matrix.shape[1])
        return matrix

    def features_of(self, videos: Sequence[str]) -> SparseRows:
        return SparseRows(self._matrix(videos))

    def _rows(self, videos: list[str], progress: bool) -> Iterator[tuple[str, np.ndarray]]:
        # Every part once over all videos (a sentence part then embeds in one call and writes its
        # cache once), sparse; made dense a chunk at a time.
        matrix = self._matrix(videos)
        with tqdm(total=len(videos), desc=f"stack {self.name}", unit="video",
                  disable=not progress) as bar:
            for start in range(0, len(videos), CHUNK):
                chunk = videos[start:start + CHUNK]
                for video, row in zip(chunk, matrix[start:start + CHUNK].toarray(), strict=True):
                    yield video_key(video), row[None]
                bar.update(len(chunk))

    def describe(self) -> dict[str, Any]:
        return {**self._described("stack", "each part's empty-caption vector"),
                "parts": {name: part.describe() for name, part in self.parts.items()}}
