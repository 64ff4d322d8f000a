"""Caption text as features: TF-IDF (scikit-learn) with the vocabulary and IDF weights fit on the
training split only, so nothing about validation or test captions leaks into the features."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from vidmem.errors import DataError


@dataclass(frozen=True)
class CaptionsConfig:
    ngram_max: int = 2  # words and word pairs
    min_df: int = 1  # keep words seen once in training (captions are short)
    sublinear_tf: bool = True


def caption_texts(captions: dict[str, str], videos: Sequence[str]) -> tuple[list[str], list[str]]:
    """The caption of each video, in order, and the videos that have none (to report: a video
    without a caption is never paired with another's text or silently given an empty one)."""
    missing = [v for v in videos if v not in captions]
    return [captions.get(v, "") for v in videos], missing


class CaptionFeatures:
    """TF-IDF vectors of captions, fit on the training videos' captions only."""

    def __init__(self, config: CaptionsConfig | None = None) -> None:
        config = config or CaptionsConfig()
        self.vectorizer = TfidfVectorizer(ngram_range=(1, config.ngram_max),
                                          min_df=config.min_df, sublinear_tf=config.sublinear_tf)

    def fit(self, captions: dict[str, str], train_videos: Sequence[str]) -> CaptionFeatures:
        texts, missing = caption_texts(captions, train_videos)
        if missing:
            raise DataError(f"{len(missing)} training video(s) have no caption, e.g. "
                            f"{missing[:3]}; fix the captions file or drop them from the split")
        self.vectorizer.fit(texts)
        return self

    def transform(self, captions: dict[str, str], videos: Sequence[str]) -> sparse.csr_matrix:
        texts, missing = caption_texts(captions, videos)
        if missing:
            raise DataError(f"{len(missing)} video(s) have no caption, e.g. {missing[:3]}")
        return self.vectorizer.transform(texts)

    @property
    def vocabulary(self) -> dict[str, Any]:
        return self.vectorizer.vocabulary_
