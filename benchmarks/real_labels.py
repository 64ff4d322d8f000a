"""Text chains on the real MediaEval 2018 dev-set labels and captions, under k-fold
cross-validation (the pipeline's own `vidmem.learn.crossval` folds), short- and long-term.

    python benchmarks/real_labels.py                          # 5 folds, every chain
    python benchmarks/real_labels.py --features tfidf --heads ridge
    python benchmarks/real_labels.py --data ../shared/mediaeval2018

Chains: features (`tfidf`: TF-IDF of words and word pairs, vocabulary fit on each fold's
training captions only; `sentence`: all-MiniLM-L6-v2 embeddings from the pinned offline wheel,
nothing fit on data) x heads (ridge, svr, mlp; strength chosen on each fold's validation part
only). Each chain is scored on every fold's test part; `benchmarks/quality.json` gets
`cv<k>_<features>_<head>_<short|long>` with the per-fold Spearman, mean, sd and the pooled
out-of-fold Spearman with its bootstrap CI, and `cv<k>_paired_<short|long>`: each chain against
the TF-IDF ridge chain over the same folds (mean difference, sd, folds won).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from vidmem.backends.sentences import SentenceConfig, SentenceEncoder
from vidmem.backends.text import CaptionFeatures, CaptionsConfig
from vidmem.data.groundtruth import read_captions, read_ground_truth
from vidmem.learn.crossval import kfold_splits, paired_difference, summarize_chain
from vidmem.learn.heads import GRID_MODELS, fit_head

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"short": "short-term_memorability", "long": "long-term_memorability"}
FEATURES = ("tfidf", "sentence")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data" / "mediaeval2018")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "quality.json")
    parser.add_argument("--features", nargs="+", choices=FEATURES, default=list(FEATURES))
    parser.add_argument("--heads", nargs="+", choices=list(GRID_MODELS), default=list(GRID_MODELS),
                        help="heads to run (default: all); other results in --out are kept")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "vidmem")
    args = parser.parse_args()

    truth = read_ground_truth(args.data / "ground-truth_dev-set.csv")
    captions = read_captions(args.data / "dev-set_video-captions.txt")
    videos = sorted(truth.videos)
    folds = kfold_splits(videos, args.folds, args.seed)
    row_of = {v: i for i, v in enumerate(videos)}
    encoder = SentenceEncoder(SentenceConfig(), args.cache) if "sentence" in args.features else None
    embedded = encoder.encode_videos(captions, videos, progress=True) if encoder else None

    def design(features: str, fold: dict[str, list[str]]) -> dict[str, object]:
        if features == "sentence":
            return {part: embedded[[row_of[v] for v in names]] for part, names in fold.items()}
        tfidf = CaptionFeatures(CaptionsConfig()).fit(captions, fold["train"])
        return {part: tfidf.transform(captions, names) for part, names in fold.items()}

    results: dict = json.loads(args.out.read_text()) if args.out.exists() else {}
    prefix = f"cv{args.folds}"
    results[f"{prefix}_setup"] = {
        "data": f"MediaEval 2018 dev set ({len(videos)} videos)", "folds": args.folds,
        "seed": args.seed, "test_per_fold": [len(f["test"]) for f in folds],
        "val_per_fold": [len(f["val"]) for f in folds],
        "sentence_model": None if encoder is None else encoder.name,
        "sentence_model_sha256": None if encoder is None else encoder.digest}
    designs = {features: [design(features, fold) for fold in folds] for features in args.features}
    for short_name, target in TARGETS.items():
        for features in args.features:
            for head in args.heads:
                start = time.perf_counter()
                true, predicted, strengths = [], [], []
                for fold, x in zip(folds, designs[features], strict=True):
                    y = {part: truth.scores(names, target) for part, names in fold.items()}
                    fitted = fit_head(head, x["train"], y["train"], x["val"], y["val"])
                    true.append(y["test"])
                    predicted.append(fitted.predict(x["test"]))
                    strengths.append(fitted.strength)
                key = f"{prefix}_{features}_{head}_{short_name}"
                results[key] = {**summarize_chain(true, predicted, 1000, args.seed),
                                "strengths": strengths,
                                "seconds": round(time.perf_counter() - start, 1)}
                row = results[key]
                args.out.write_text(json.dumps(results, indent=2) + "\n")  # kept if stopped
                print(f"{key}: mean {row['mean']:.3f} ± {row['sd']:.3f} (folds "
                      f"{', '.join(f'{s:.3f}' for s in row['folds'])}); pooled "
                      f"{row['pooled_spearman']:.3f} [{row['pooled_ci95_low']:.3f}, "
                      f"{row['pooled_ci95_high']:.3f}]", flush=True)
        baseline = results.get(f"{prefix}_tfidf_ridge_{short_name}")
        if baseline:
            results[f"{prefix}_paired_{short_name}"] = {
                f"{key[len(prefix) + 1:-len(short_name) - 1]}_vs_tfidf_ridge":
                    paired_difference(value["folds"], baseline["folds"])
                for key, value in sorted(results.items())
                if key.startswith(f"{prefix}_") and key.endswith(f"_{short_name}")
                and isinstance(value, dict) and "folds" in value
                and key != f"{prefix}_tfidf_ridge_{short_name}"
                and "paired" not in key}
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
