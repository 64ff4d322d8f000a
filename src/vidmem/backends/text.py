"""Caption text as features: TF-IDF (scikit-learn) with the vocabulary and IDF weights fit on the
training split only, so nothing about validation or test captions leaks into the features."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from vidmem.core.errors import DataError, ParamsError
from vidmem.core.params import as_int


@dataclass(frozen=True)
class CaptionsConfig:
    """TF-IDF settings (`backend.<name>` for `kind: captions`)."""

    ngram_max: int = 2  # words and word pairs
    min_df: int = 1  # keep words seen once in training (captions are short)
    sublinear_tf: bool = True
    # The most frequent training terms kept. None keeps all (MediaEval 2018: 25,924 terms, test
    # Spearman 0.431 ridge / 0.437 SVR); 8,192 costs 0.004-0.005 and stores 32 KB per video.
    max_features: int | None = None

    @classmethod
    def from_section(cls, section: dict[str, Any], where: str) -> CaptionsConfig:
        sublinear = section.get("sublinear_tf", True)
        if not isinstance(sublinear, bool):
            raise ParamsError(f"params.yaml: '{where}.sublinear_tf' must be true or false")
        max_features = section.get("max_features")
        return cls(ngram_max=as_int(section.get("ngram_max", 2), f"{where}.ngram_max", 1),
                   min_df=as_int(section.get("min_df", 1), f"{where}.min_df", 1),
                   sublinear_tf=sublinear,
                   max_features=None if max_features is None else
                   as_int(max_features, f"{where}.max_features", 1))


def caption_texts(captions: dict[str, str | list[str]],
                  videos: Sequence[str]) -> tuple[list[str], list[str]]:
    """The caption of each video, in order (several descriptions joined into one text), and the
    videos that have none (to report: a video without a caption is never paired with another's
    text or silently given an empty one)."""
    missing = [v for v in videos if v not in captions]
    texts = [captions.get(v, "") for v in videos]
    return [t if isinstance(t, str) else " ".join(t) for t in texts], missing


class SparseRows:
    """Per-video features [videos, 1, dim] held as a sparse matrix: `features[rows]` gives those
    rows dense (float32), like a concat output's features, so a head reads them in chunks and
    the whole is never dense (25,924 terms × 8,000 videos would be 830 MB)."""

    ndim = 3

    def __init__(self, matrix: sparse.csr_matrix) -> None:
        self.matrix = matrix
        self.shape = (matrix.shape[0], 1, matrix.shape[1])
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        if np.ndim(index) == 0 and not isinstance(index, slice):
            return self[np.array([index])][0]
        return self.matrix[index].toarray().astype(np.float32, copy=False)[:, None, :]

    def close(self) -> None:
        """Nothing to release (the interface of a concat output's features)."""


class CaptionFeatures:
    """TF-IDF vectors of captions, fit on the training videos' captions only."""

    def __init__(self, config: CaptionsConfig | None = None) -> None:
        config = config or CaptionsConfig()
        self.vectorizer = TfidfVectorizer(ngram_range=(1, config.ngram_max),
                                          min_df=config.min_df, sublinear_tf=config.sublinear_tf,
                                          max_features=config.max_features, dtype=np.float32)

    def fit(self, captions: dict[str, str], train_videos: Sequence[str]) -> CaptionFeatures:
        texts, missing = caption_texts(captions, train_videos)
        if missing:
            raise DataError(f"{len(missing)} training video(s) have no caption, e.g. "
                            f"{missing[:3]}; fix the captions file or drop them from the split")
        self.vectorizer.fit(texts)
        return self

    def transform(self, captions: dict[str, str], videos: Sequence[str],
                  allow_missing: bool = False) -> sparse.csr_matrix:
        """TF-IDF rows of `videos`' captions. A video without a caption is an error, or with
        `allow_missing` the all-zero row of an empty caption (the caller reports it)."""
        texts, missing = caption_texts(captions, videos)
        if missing and not allow_missing:
            raise DataError(f"{len(missing)} video(s) have no caption, e.g. {missing[:3]}")
        return self.vectorizer.transform(texts)

    def rows(self, captions: dict[str, Any], videos: Sequence[str]) -> SparseRows:
        """The videos' TF-IDF rows as features [len(videos), 1, terms], kept sparse (a video
        without a caption has the empty row)."""
        return SparseRows(self.transform(captions, videos, allow_missing=True))

    @property
    def vocabulary(self) -> dict[str, Any]:
        return self.vectorizer.vocabulary_

    def state(self) -> dict[str, Any]:
        """Everything the fitted TF-IDF needs to transform new captions, as plain values (the
        terms in column order, their IDF weights, the settings): what a checkpoint carries."""
        terms = sorted(self.vectorizer.vocabulary_, key=self.vectorizer.vocabulary_.__getitem__)
        return {"kind": "tfidf", "terms": terms,
                "idf": [float(v) for v in self.vectorizer.idf_],
                "ngram_max": self.vectorizer.ngram_range[1],
                "sublinear_tf": self.vectorizer.sublinear_tf}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CaptionFeatures:
        """The fitted TF-IDF back from `state()`: the same vectors for the same captions, and
        nothing refit (new captions' unseen words get no column)."""
        features = cls.__new__(cls)
        features.vectorizer = TfidfVectorizer(
            ngram_range=(1, int(state["ngram_max"])), sublinear_tf=bool(state["sublinear_tf"]),
            vocabulary={term: i for i, term in enumerate(state["terms"])}, dtype=np.float32)
        features.vectorizer.idf_ = np.asarray(state["idf"], dtype=np.float64)
        return features


def checked_tfidf_state(state: Any, source: str) -> dict[str, Any]:
    """A TF-IDF state (`CaptionFeatures.state`, read from `source`) checked before anything is
    built from it: the kind, distinct terms, one finite positive IDF weight per term, and the
    settings. DataError naming the file and the field otherwise."""
    def bad(field: str, why: str) -> DataError:
        return DataError(f"{source}: backend_state.{field} {why}; retrain it with `dvc repro`")

    if not isinstance(state, dict):
        raise bad("(all)", "is not a mapping: a captions backend needs its fitted TF-IDF")
    if state.get("kind") != "tfidf":
        raise bad("kind", f"is {state.get('kind')!r}, but a captions backend needs 'tfidf'")
    terms, idf = state.get("terms"), state.get("idf")
    if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms) \
            or len(set(terms)) != len(terms) or not terms:
        raise bad("terms", "is not a list of distinct words")
    if not isinstance(idf, list) or len(idf) != len(terms) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
            for v in idf):
        raise bad("idf", f"must be {len(terms)} finite weights > 0, one per term")
    if state.get("ngram_max") not in (1, 2, 3) or not isinstance(state.get("sublinear_tf"), bool):
        raise bad("ngram_max", f"is {state.get('ngram_max')!r} with sublinear_tf "
                               f"{state.get('sublinear_tf')!r}: expected 1..3 and a boolean")
    return state
