"""Score videos that have no labels (the official test set, new videos) with what `dvc repro`
trained: every chain in params.yaml and their fusion, or one chain.

    vidmem predict --videos data/mediaeval2018/test-set/videos \\
        --captions data/mediaeval2018/test-set/test-set_video-captions.txt --out test-set.csv

writes one row per video: `video`, one column per chain (its checkpoint's score) and `fusion`
(the fused score, from `models/fusion.json`). Frame backends take the training path (decode →
extract with the same params and the same per-video cache); caption backends (`kind: captions`,
`kind: sentence`) turn `--captions` (in the data set's layout) into features with the state their
checkpoint carries (the fitted TF-IDF vocabulary and IDF weights, or the embedding model and its
digest): nothing is refit on the scored videos. A video a backend cannot score (undecodable, no caption)
is listed in `<out>.skipped.csv` with the reason; its fused score is left empty, never made from
a zero vector. `--chain NAME` scores with one chain. For a backend that reads no frames
(`kind: precomputed`), `--videos` is the folder of the videos' feature files, in its layout.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from vidmem.app.pipeline import features_for_videos
from vidmem.backends import backend_config
from vidmem.core.errors import DataError, VidmemError
from vidmem.core.files import video_key, write_csv
from vidmem.core.params import Params
from vidmem.data.dataset import open_dataset
from vidmem.learn.chain import imported_head, load_scorer
from vidmem.learn.fusion import Fusion
from vidmem.store.concatenated import load_concat
from vidmem.store.features import concat_features, feature_stems


def predict_videos(videos_dir: str | os.PathLike, params: Params, chain: str,
                   checkpoint_path: str | os.PathLike, progress: bool = True,
                   captions_path: str | os.PathLike | None = None,
                   ) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """One chain's predicted scores (`video`, `predicted`) for every video in `videos_dir`
    (a caption backend: every one of them with a caption in `captions_path`), and the videos
    skipped with reasons. Every backend takes one path: built from params, given the state its
    checkpoint carries (nothing is refit), features made as the stages make them, scored."""
    backend_name = params.chain_spec(chain).backend
    score, checkpoint = load_scorer(checkpoint_path, imported_head(params, chain))
    if checkpoint.get("backend") not in (None, backend_name):
        raise DataError(f"{checkpoint_path} was trained on backend {checkpoint['backend']!r}, "
                        f"but chain {chain!r} is on {backend_name!r} (params.yaml): pass the "
                        "matching --chain or --model")
    config = backend_config(params, backend_name)
    backend = config.build(params.cache.dir)
    # Checkpoints before backend_state called a caption backend's state text_features.
    backend.load_state(checkpoint.get("backend_state", checkpoint.get("text_features")),
                       str(checkpoint_path))
    if config.facts.reads_captions:
        if captions_path is None:
            raise DataError(f"backend {backend_name} scores captions: pass the scored videos' "
                            "captions with --captions FILE (in the data set's layout, "
                            "data.format)")
        backend.use_dataset(open_dataset(params.data.with_captions(captions_path)), None)
    with tempfile.TemporaryDirectory(prefix="vidmem-predict-") as work:
        made = features_for_videos(videos_dir, work, params, backend_name, progress, backend)
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


def predict_all(videos_dir: str | os.PathLike, params: Params,
                chains: list[str] | None = None, models_dir: str | os.PathLike = "models",
                captions_path: str | os.PathLike | None = None, progress: bool = True,
                ) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Every chain's score (`models/<chain>.pt`) and, with all of params' chains, the fused
    score (`models/fusion.json`), one row per video; and what was skipped, with reasons.
    (Chains on one backend each make its features: from the per-video cache after the first.)"""
    names = chains or list(params.chains)
    table: pd.DataFrame | None = None
    skipped: list[dict[str, str]] = []
    for name in names:
        part, missed = predict_videos(videos_dir, params, name, Path(models_dir) / f"{name}.pt",
                                      progress, captions_path)
        part = part.rename(columns={"predicted": name, "video": f"video:{name}"})
        # One video, one row: a chain on feature files knows a video by its stem (`video10`),
        # frame and caption backends by its file name (`video10.webm`); rows meet on the stem
        # (stems are unique in a videos folder: list_videos) and keep the file name.
        part["stem"] = [video_key(v) for v in part[f"video:{name}"]]
        table = part if table is None else table.merge(part, on="stem", how="outer")
        skipped += missed
    assert table is not None
    named = table[[f"video:{n}" for n in names]]
    has_suffix = named.apply(lambda column: column.str.contains(".", regex=False).fillna(False))
    table.insert(0, "video", named.where(has_suffix).bfill(axis=1).iloc[:, 0]
                 .fillna(named.bfill(axis=1).iloc[:, 0]))
    table = table.drop(columns=["stem", *named.columns])
    fusion_file = Path(models_dir) / "fusion.json"
    if chains is None and len(names) > 1:
        fusion = Fusion.load(fusion_file, names)
        complete = table[names].notna().all(axis=1)
        table["fusion"] = np.nan
        table.loc[complete, "fusion"] = fusion.predict(
            {n: table.loc[complete, n].to_numpy(np.float64) for n in names})
        skipped += [{"video": row["video"], "stage": "fusion",
                     "reason": "no score from " + ", ".join(n for n in names if pd.isna(row[n]))}
                    for _, row in table[~complete].iterrows()]
    return table.sort_values("video", ignore_index=True), skipped


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", required=True,
                        help="folder of videos to score (precomputed backends: of their feature files)")
    parser.add_argument("--captions", help="the videos' captions (MediaEval format), for caption "
                                           "backends")
    parser.add_argument("--chain", "--backend", dest="chain",
                        help="score with this chain only (default: every chain in params.yaml "
                             "and their fusion)")
    parser.add_argument("--model", help="checkpoint, with --chain (default: models/<chain>.pt)")
    parser.add_argument("--models", default="models",
                        help="folder of the checkpoints and fusion.json (default: models)")
    parser.add_argument("--out", required=True, help="CSV to write")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        params = Params.load(args.params)
        if args.chain:
            table, skipped = predict_videos(
                args.videos, params, args.chain,
                args.model or Path(args.models) / f"{args.chain}.pt",
                progress=not args.no_progress, captions_path=args.captions)
            table = table.rename(columns={"predicted": args.chain})
        else:
            if args.model:
                raise DataError("--model needs --chain (it is one chain's checkpoint)")
            table, skipped = predict_all(args.videos, params, None, args.models, args.captions,
                                         progress=not args.no_progress)
    except VidmemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_csv(args.out, table)
    if skipped:
        write_csv(f"{args.out}.skipped.csv", pd.DataFrame(skipped))
        print(f"{len(skipped)} video(s) skipped: see {args.out}.skipped.csv", file=sys.stderr)
    print(f"wrote {len(table)} row(s) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
