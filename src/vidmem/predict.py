"""Score videos that have no labels (the official test set, new videos) with a trained model.

The videos take the training path (decode → extract with the same params and the
same per-video cache), then the checkpoint scores them:

    vidmem predict --videos data/mediaeval2018/test-set/videos \\
        --backend efficientnet_lite0 --out predictions/test-set.csv

writes one row per video (`video,predicted`); videos that could not be decoded are listed in
`<out>.skipped.csv` with the reason. For a backend that reads no frames (`kind: precomputed`),
`--videos` is the folder of the videos' feature files, in the backend's layout.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from vidmem.errors import DataError, VidmemError
from vidmem.features import concat_features, feature_stems, load_concat
from vidmem.files import write_csv
from vidmem.heads import load_scorer
from vidmem.params import load_params
from vidmem.pipeline import features_for_videos


def predict_videos(videos_dir: str | os.PathLike, params: dict[str, Any], backend_name: str,
                   checkpoint_path: str | os.PathLike,
                   progress: bool = True) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Predicted scores for every video in `videos_dir`, and the videos skipped with reasons."""
    score, checkpoint = load_scorer(checkpoint_path)  # any head: LSTM, ridge, SVR
    if checkpoint.get("backend") not in (None, backend_name):
        raise DataError(f"{checkpoint_path} was trained on backend {checkpoint['backend']!r}, "
                        f"not {backend_name!r}: pass the matching --backend or --model")
    with tempfile.TemporaryDirectory(prefix="vidmem-predict-") as work:
        made = features_for_videos(videos_dir, work, params, backend_name, progress)
        stems = feature_stems(made.features_dir)
        if not stems:
            raise DataError(f"no video in {videos_dir} could be scored")
        videos = [made.video_names.get(stem, stem) for stem in stems]
        # The same packing as the concat stage, so scoring streams in batches too.
        concat_features(made.features_dir, videos, Path(work) / "concat", stems=stems)
        features, _ = load_concat(Path(work) / "concat")
        scores = score(features, None)
        features.close()
    return pd.DataFrame({"video": videos, "predicted": scores}), made.skipped


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", required=True,
                        help="folder of videos to score (precomputed backends: of their feature files)")
    parser.add_argument("--backend", required=True, help="backend the model was trained on")
    parser.add_argument("--model", help="checkpoint (default: models/<backend>.pt)")
    parser.add_argument("--out", required=True, help="CSV to write")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        table, skipped = predict_videos(args.videos, params, args.backend,
                                        args.model or f"models/{args.backend}.pt",
                                        progress=not args.no_progress)
    except VidmemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_csv(args.out, table)
    if skipped:
        write_csv(f"{args.out}.skipped.csv", pd.DataFrame(skipped))
        print(f"{len(skipped)} video(s) skipped: see {args.out}.skipped.csv", file=sys.stderr)
    print(f"wrote {len(table)} prediction(s) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
