"""Captions on the real MediaEval 2018 dev-set labels: TF-IDF features with each head, test
Spearman and its bootstrap 95% CI, short- and long-term.

    python benchmarks/real_labels.py                 # the copy in tests/data/mediaeval2018
    python benchmarks/real_labels.py --data ../shared/mediaeval2018

Split 6000/1000/1000 with the pipeline's own `split_videos` (seed `--seed`); the TF-IDF
vocabulary is fit on the training captions only and each head's regularisation is chosen on the
validation split only. Writes benchmarks/quality.json (keys `captions_<head>_<short|long>`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from vidmem.captions import CaptionFeatures
from vidmem.groundtruth import read_captions, read_ground_truth
from vidmem.heads import HEADS, fit_head
from vidmem.metrics import regression_metrics
from vidmem.params import SplitConfig
from vidmem.split import split_videos

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"short": "short-term_memorability", "long": "long-term_memorability"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data" / "mediaeval2018")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "quality.json")
    parser.add_argument("--heads", nargs="+", choices=HEADS, default=list(HEADS),
                        help="heads to run (default: all); other results in --out are kept")
    args = parser.parse_args()

    truth = read_ground_truth(args.data / "ground-truth_dev-set.csv")
    captions = read_captions(args.data / "dev-set_video-captions.txt")
    split = split_videos(truth.videos, SplitConfig(6000, 1000, 1000, args.seed))
    features = CaptionFeatures().fit(captions, split["train"])
    x = {part: features.transform(captions, videos) for part, videos in split.items()}
    results: dict = json.loads(args.out.read_text()) if args.out.exists() else {}
    results |= {"data": "MediaEval 2018 dev set (8,000 videos), split 6000/1000/1000, "
                             f"seed {args.seed}", "vocabulary": len(features.vocabulary)}
    for short_name, target in TARGETS.items():
        y = {part: truth.scores(videos, target) for part, videos in split.items()}
        for head in args.heads:
            start = time.perf_counter()
            fitted = fit_head(head, x["train"], y["train"], x["val"], y["val"])
            metrics = regression_metrics(y["test"], fitted.predict(x["test"]), 1000, args.seed)
            key = f"captions_{head}_{short_name}"
            results[key] = {**metrics, "strength": fitted.strength,
                            "val_spearman": round(fitted.val_spearman, 4),
                            "seconds": round(time.perf_counter() - start, 1)}
            print(f"{key}: test Spearman {metrics['spearman']:.3f} "
                  f"[{metrics['spearman_ci95_low']:.3f}, {metrics['spearman_ci95_high']:.3f}] "
                  f"({'alpha' if head == 'ridge' else 'C'} {fitted.strength}, val "
                  f"{fitted.val_spearman:.3f})", flush=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
