"""The quality chain (#12) piece by piece: the captions backend, the heads' checkpoints, late
fusion and the demo's captions. The whole chain under the real `dvc` CLI is in test_e2e.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vidmem.backends import create_backend
from vidmem.backends.base import extract_step
from vidmem.core.errors import DataError, ParamsError
from vidmem.core.files import write_json
from vidmem.core.params import Params
from vidmem.data.demo import VIVID_WORDS, DemoConfig, demo_latents
from vidmem.learn.chain import (
    create_head,
    head_from_file,
    head_of,
    head_settings,
    list_heads,
    load_scorer,
)
from vidmem.learn.fusion import fuse_split_table
from vidmem.learn.heads import GRID_MODELS, design_matrix, fit_head, head_checkpoint, is_sparse
from vidmem.learn.metrics import spearman
from vidmem.learn.training import save_checkpoint
from vidmem.store.shards import ShardReader

from conftest import dataset_of

CAPTIONS = {"a.webm": "red car on a road", "b.webm": "blue car at night",
            "c.webm": "dog on a beach", "d.webm": "zebra crossing savanna",
            "e.webm": "car crash"}
SPLIT = {"train": ["a.webm", "b.webm", "c.webm"], "val": ["d.webm"], "test": ["e.webm", "f.webm"]}


def captions_backend(tmp_path, on_bad_input="skip"):
    (tmp_path / "captions.txt").write_text(
        "".join(f"{v}\t{c.replace(' ', '-')}\n" for v, c in CAPTIONS.items()))
    write_json(tmp_path / "split.json", SPLIT)
    params = {"backend": {"captions": {"kind": "captions", "ngram_max": 1, "input": None}}}
    backend = create_backend(Params(params), "captions")
    backend.use_dataset(dataset_of(tmp_path / "captions.txt", on_bad_input),
                        tmp_path / "split.json")
    return backend


def test_captions_backend_fits_on_training_captions_and_reports_missing(tmp_path):
    result = extract_step(tmp_path / "unused", tmp_path / "features", captions_backend(tmp_path))
    vocabulary = result.info["feature_dim"]
    assert vocabulary == len({w for v in SPLIT["train"] for w in CAPTIONS[v].split()} - {"a"})
    assert result.info["videos_without_caption"] == ["f.webm"]
    assert "f.webm" in result.info["warnings"][0]
    features = ShardReader(tmp_path / "features")
    assert set(features.stems()) == {v[:-5] for v in CAPTIONS} | {"f"}  # f has no caption
    rows = {v: features.load(v[:-5]) for v in CAPTIONS}
    assert rows["d.webm"].shape == (1, vocabulary) and not rows["d.webm"].any()  # unseen words
    assert rows["e.webm"].any()  # "car" was seen in training
    assert not features.load("f").any()  # no caption: the empty one's row
    # A validation or test caption changes nothing that was fit.
    CAPTIONS_BEFORE = dict(CAPTIONS)
    try:
        CAPTIONS["d.webm"] = "car car red road night"
        again = extract_step(tmp_path / "unused", tmp_path / "features2",
                             captions_backend(tmp_path))
        assert again.info["feature_dim"] == vocabulary
        np.testing.assert_array_equal(ShardReader(tmp_path / "features2").load("a"),
                                      rows["a.webm"])
    finally:
        CAPTIONS.clear()
        CAPTIONS.update(CAPTIONS_BEFORE)


def test_captions_backend_under_fail_policy_and_without_captions(tmp_path):
    with pytest.raises(DataError, match="f.webm"):
        extract_step(tmp_path / "unused", tmp_path / "out", captions_backend(tmp_path, "fail"))
    assert not (tmp_path / "out").exists()  # nothing half-written
    backend = captions_backend(tmp_path)
    backend.use_dataset(dataset_of(None), tmp_path / "split.json")
    with pytest.raises(ParamsError, match="data.captions"):
        extract_step(tmp_path / "unused", tmp_path / "out", backend)


def chains_params(**chains: dict) -> Params:
    return Params({"backends": ["b", "t"], "chains": chains})


def test_chain_keys_are_checked():
    """`chains.<c>`: a listed backend and a registered head (or an import path); each error
    names the key and the fix, and a backend may feed several chains."""
    params = chains_params(b={"backend": "b", "head": "ridge"}, b_svr={"backend": "b", "head": "svr"},
                           t={"backend": "t", "head": "lstm"})
    assert [head_of(params, c) for c in ("b", "b_svr", "t")] == ["ridge", "svr", "lstm"]
    assert {c: s.backend for c, s in params.chains.items()} == {"b": "b", "b_svr": "b", "t": "t"}
    with pytest.raises(ParamsError, match="'chains.b.head' must be one of"):
        head_of(chains_params(b={"backend": "b", "head": "forest"}), "b")
    with pytest.raises(ParamsError, match="no 'chains.x'"):
        head_of(chains_params(b={"backend": "b", "head": "ridge"}), "x")
    with pytest.raises(ParamsError, match=r"'chains.b.backend' is 'z', which 'backends' does not"):
        head_of(chains_params(b={"backend": "z", "head": "ridge"}), "b")
    with pytest.raises(ParamsError, match=r"'chains.b' must be \{backend: "):
        head_of(chains_params(b="ridge"), "b")
    with pytest.raises(ParamsError, match=r"no chain trains on backend\(s\) \['t'\]"):
        list(chains_params(b={"backend": "b", "head": "ridge"}).chains)
    with pytest.raises(ParamsError, match="not 'fusion'"):
        list(chains_params(fusion={"backend": "b", "head": "ridge"},
                           t={"backend": "t", "head": "lstm"}).chains)
    # The layout before chains: an error that spells out the new one, not a silent default.
    with pytest.raises(ParamsError, match=r"'heads' has become 'chains'.*\{backend: b, head: svr\}"):
        list(Params({"backends": ["b"], "heads": {"b": "svr"}}).chains)


def test_head_stage_file_carries_only_its_heads_settings(tmp_path):
    """The head stage's file holds the chain's head and that head's settings only: the LSTM's
    come from lr, epochs, batch_size and model.*; a grid head's from its grid, not from lr.
    train builds the head from the file, and a bad file is an error that names it."""
    raw = {"lr": 3e-3, "epochs": 2, "batch_size": 8, "target": "short-term_memorability",
           "model": {"hidden_size": 4, "num_layers": 1, "dropout": 0.0}, "base": {"seed": 0},
           "backends": ["net", "text"], "chains": {"net": {"backend": "net", "head": "lstm"},
                                                    "text": {"backend": "text", "head": "ridge"}}}
    lstm, ridge = head_settings(Params(raw), "net"), head_settings(Params(raw), "text")
    assert lstm == {"head": "lstm", "settings": {"lr": 3e-3, "epochs": 2, "batch_size": 8,
                                                 "hidden_size": 4, "num_layers": 1,
                                                 "dropout": 0.0}}
    assert ridge == {"head": "ridge", "settings": {"grid": GRID_MODELS["ridge"].grid}}
    assert head_settings(Params({**raw, "lr": 1.0}), "text") == ridge
    write_json(tmp_path / "net.json", lstm)
    head = head_from_file(tmp_path / "net.json")
    rng = np.random.default_rng(0)
    features = rng.normal(size=(24, 3, 5)).astype(np.float32)
    index = {"train": np.arange(16), "val": np.arange(16, 20), "test": np.arange(20, 24)}
    fit = head.fit(Params(raw).chain, features, features[:, 0, 0], index, progress=False)
    assert len(fit.history) == 2 and fit.checkpoint["hidden_size"] == 4  # the file's settings
    write_json(tmp_path / "bad.json", {"head": "lstm", "settings": {**lstm["settings"], "lr": -1}})
    with pytest.raises(DataError, match=r"bad.json: .*'lr'"):
        head_from_file(tmp_path / "bad.json")
    write_json(tmp_path / "odd.json", {"head": "ridge", "settings": {"grid": [], "x": 1}})
    with pytest.raises(DataError, match="odd.json"):
        head_from_file(tmp_path / "odd.json")


@pytest.mark.parametrize("name", list_heads())
def test_every_registered_head_fits_saves_and_scores_like_in_memory(tmp_path, name):
    """The contract each head keeps (as timm tests every registered model): it fits on the
    training rows, chooses on the validation rows, never reads the test rows, and a checkpoint
    saved and loaded through `load_scorer` scores like the fitted head."""
    from vidmem.core.params import TrainConfig

    rng = np.random.default_rng(5)
    features = rng.normal(size=(90, 3, 5)).astype(np.float32)
    targets = (0.5 + 0.1 * features.mean(axis=1)[:, 0]).astype(np.float32)
    index = {"train": np.arange(60), "val": np.arange(60, 75), "test": np.arange(75, 90)}
    config = TrainConfig(lr=1e-3, epochs=3, batch_size=32, target="short-term_memorability",
                         hidden_size=8, num_layers=1, dropout=0.0, seed=0, device="cpu",
                         shuffle_train_labels=False)
    head = create_head(name)
    fit = head.fit(config, features, targets, index, progress=False)
    poisoned = targets.copy()
    poisoned[index["test"]] = rng.permutation(poisoned[index["test"]])  # test labels unused
    again = head.fit(config, features, poisoned, index, progress=False)
    assert fit.best_step == again.best_step and fit.metrics == again.metrics
    assert fit.checkpoint["head"] == name and 1 <= fit.best_step <= len(fit.history)
    assert {head.step, "train_loss", "val_loss", "val_spearman"} <= set(fit.history.columns)
    save_checkpoint(fit.checkpoint, tmp_path / "m.pt")
    score, checkpoint = load_scorer(tmp_path / "m.pt")
    in_memory = head.scorer(fit.checkpoint, "memory")(features, index["test"])
    np.testing.assert_allclose(score(features, index["test"]), in_memory, rtol=1e-6)
    assert np.ptp(in_memory) > 0 and head.describe(checkpoint)
    with pytest.raises(DataError, match="expects \\[videos, frames, 5\\]"):
        score(np.zeros((2, 3, 4), np.float32), None)


@pytest.mark.parametrize("kind", ["ridge", "svr", "mlp"])
def test_sklearn_head_checkpoint_round_trips(tmp_path, kind):
    rng = np.random.default_rng(1)
    features = rng.normal(size=(120, 4, 6)).astype(np.float32)
    y = features.mean(axis=1)[:, 0] + 0.1 * rng.normal(size=120)
    pooled = features.mean(axis=1)
    fitted = fit_head(kind, pooled[:80], y[:80], pooled[80:100], y[80:100])
    save_checkpoint(head_checkpoint(fitted, 6, "short-term_memorability", False),
                    tmp_path / "m.pt")
    score, checkpoint = load_scorer(tmp_path / "m.pt")
    assert checkpoint["head"] == kind
    rows = np.arange(100, 120)
    np.testing.assert_allclose(score(features, rows), fitted.predict(pooled[100:]), rtol=1e-5)
    with pytest.raises(DataError, match="expects \\[videos, frames, 6\\]"):
        score(np.zeros((2, 4, 5), np.float32), None)


@pytest.mark.parametrize("kind", ["ridge", "svr", "mlp"])
def test_sparse_head_scores_rows_of_any_density(tmp_path, kind):
    """TF-IDF rows train as a sparse matrix; dense test rows go in the same form and score as
    the fitted scikit-learn model scores them, row by row."""
    rng = np.random.default_rng(3)
    features = (rng.random((60, 1, 50)) < 0.05) * rng.random((60, 1, 50)).astype(np.float32)
    y = features[:, 0, :5].sum(axis=1)
    x = features[:, 0]
    assert is_sparse(x[:40]) is True
    fitted = fit_head(kind, design_matrix(x[:40], True), y[:40], design_matrix(x[40:], True),
                      y[40:])
    save_checkpoint(head_checkpoint(fitted, 50, "short-term_memorability", True),
                    tmp_path / "m.pt")
    score, _ = load_scorer(tmp_path / "m.pt")
    dense_rows = np.concatenate([features[40:], np.ones((3, 1, 50), np.float32)])
    expected = fitted.predict(design_matrix(dense_rows[:, 0], True))
    np.testing.assert_allclose(score(dense_rows, None), expected, rtol=1e-5, atol=1e-6)
    assert np.ptp(expected) > 0  # rows that differ score differently: not a constant


class _RunsCode:
    """Unpickling this calls os.system: what a crafted checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["ridge", "svr", "mlp"])
def test_loading_a_crafted_head_checkpoint_runs_no_code(tmp_path, kind):
    import pickle

    import torch

    rng = np.random.default_rng(4)
    pooled = rng.normal(size=(40, 3))
    fitted = fit_head(kind, pooled[:30], pooled[:30, 0], pooled[30:], pooled[30:, 0])
    checkpoint = head_checkpoint(fitted, 3, "short-term_memorability", False)
    # The saved head holds tensors and numbers only: nothing in it is pickled.
    assert all(isinstance(v, torch.Tensor | float | str | list) for v in
               checkpoint["estimator"].values())
    marker = tmp_path / "code-ran"
    crafted = {**checkpoint, "estimator": pickle.dumps(_RunsCode(marker))}
    save_checkpoint(crafted, tmp_path / "crafted.pt")
    with pytest.raises(DataError, match="crafted.pt.*pickled bytes"):
        load_scorer(tmp_path / "crafted.pt")
    assert not marker.exists()
    # A crafted object anywhere else in the file is refused by torch's weights_only loader,
    # as a vidmem error naming the file.
    torch.save({**checkpoint, "extra": _RunsCode(marker)}, tmp_path / "crafted2.pt")
    with pytest.raises(DataError, match="crafted2.pt: not a readable vidmem checkpoint"):
        load_scorer(tmp_path / "crafted2.pt")
    assert not marker.exists()


def test_fusion_weights_never_see_test_labels_and_beat_each_member():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 400))  # two independent parts of the score
    y = a + b + 0.3 * rng.normal(size=400)
    predictions = {"visual": a + 0.3 * rng.normal(size=400),
                   "captions": 3 * b + rng.normal(size=400)}  # another scale, another head
    # The table the fusion stage reads: val and test rows, labels and every member's scores.
    table = pd.DataFrame({"split": ["val"] * 200 + ["test"] * 200,
                          "video": [f"v{i}" for i in range(400)], "true": y, **predictions})
    fusion, test = fuse_split_table(table, ["visual", "captions"])
    assert 0.3 < fusion.weights["visual"] < 0.7 and sum(fusion.weights.values()) == 1
    best_single = max(spearman(test.true, test[n]) for n in predictions)
    assert spearman(test.true, test.predicted) > best_single + 0.05
    # Test labels made to favour one member completely (they equal its scores): a fusion that
    # looked at them would move to weight 1 there. The weights and test scores do not move.
    rigged = table.copy()
    is_test = rigged.split == "test"
    rigged.loc[is_test, "true"] = rigged.loc[is_test, "captions"]
    again, again_test = fuse_split_table(rigged, ["visual", "captions"])
    assert again.weights == fusion.weights
    np.testing.assert_array_equal(again_test.predicted, test.predicted)
    # The same change on the validation rows does move them: the check can see a leak.
    rigged_val = table.copy()
    is_val = rigged_val.split == "val"
    rigged_val.loc[is_val, "true"] = rigged_val.loc[is_val, "captions"]
    assert fuse_split_table(rigged_val, ["visual", "captions"])[0].weights["captions"] == 1


def test_demo_grows_without_changing_existing_videos():
    small, large = (demo_latents(DemoConfig(n_videos=n)) for n in (20, 23))
    pd.testing.assert_frame_equal(small, large.iloc[:20])
    assert demo_latents(DemoConfig(n_videos=20, seed=1)).caption.tolist() != small.caption.tolist()


def test_demo_captions_carry_the_story_part_of_the_score():
    table = demo_latents(DemoConfig(n_videos=400))
    vivid = table.caption.map(lambda c: sum(w in VIVID_WORDS for w in c.split("-")))
    assert spearman(table.story.to_numpy(), vivid.to_numpy()) > 0.8
    # The story carries 0.2 of the short-term score's weights (about 0.26 Spearman with the
    # caption's vivid words; unrelated columns give 0 ± 0.05 on 400 videos) ...
    score = table["short-term_memorability"].to_numpy()
    assert spearman(score, vivid.to_numpy()) > 0.15
    # ... and what the frames show the rest, so the frame chain can learn most of it.
    visible = (0.5 * table["size"] + 0.3 * table.brightness).to_numpy()
    assert spearman(score, visible) > 0.85


def test_demo_videos_keep_their_bytes_when_the_demo_grows(tmp_path):
    from vidmem.data.demo import make_demo_dataset

    for n in (3, 4):
        make_demo_dataset(tmp_path / f"v{n}", tmp_path / f"gt{n}.csv",
                          DemoConfig(n_videos=n, seconds=0.5), captions=tmp_path / f"c{n}.txt")
    for i in (1, 2, 3):
        assert (tmp_path / "v3" / f"video{i}.webm").read_bytes() == \
            (tmp_path / "v4" / f"video{i}.webm").read_bytes()
    assert (tmp_path / "c4.txt").read_text().startswith((tmp_path / "c3.txt").read_text())


def test_a_grid_edge_choice_is_reported():
    """#35: a strength chosen at the weakest or strongest end of a grid head's grid may be cut
    off by the grid; the fit says so (a metric the train and cv_train reports carry, and a
    warning the stages print), and says nothing for a choice inside the grid."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 1, 4)).astype(np.float32)
    y = x[:, 0] @ np.array([1.0, -2.0, 0.5, 3.0])  # noiseless: any weak ridge ranks perfectly
    index = {"train": np.arange(40), "val": np.arange(40, 60), "test": np.arange(0)}
    config = Params({"target": "short-term_memorability", "base": {"seed": 0}}).chain

    def fit(grid):
        return create_head("ridge", {"grid": grid}).fit(config, x, y, index, progress=False)

    edge = fit([1e4, 1e-6])  # the weakest wins
    assert edge.metrics["strength"] == 1e-6 and edge.metrics["at_grid_edge"] is True
    assert "edge of the ridge grid [1e-06, 10000.0]" in edge.warnings[0]
    inside = fit([1e4, 1e-3, 1e-6])  # 1e-3 ties 1e-6 at validation Spearman 1 and comes first
    assert inside.metrics["strength"] == 1e-3 and inside.metrics["at_grid_edge"] is False
    assert inside.warnings == []


def test_each_head_names_its_steps_truthfully():
    """#33: a grid head tries candidates (strengths), not epochs: its history, its best-step
    metric and its checkpoint say so; the LSTM's say epochs."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 2, 3)).astype(np.float32)
    y = x.mean(axis=1) @ np.array([1.0, 0.5, -1.0])
    index = {"train": np.arange(20), "val": np.arange(20, 30), "test": np.arange(0)}
    config = Params({"target": "short-term_memorability", "base": {"seed": 0}}).chain
    grid = create_head("ridge", {"grid": [1e-3, 1.0, 1e3]}).fit(config, x, y, index,
                                                               progress=False)
    assert list(grid.history["candidate"]) == [1, 2, 3] and "epoch" not in grid.history
    assert grid.metrics["best_candidate"] == grid.best_step and "best_epoch" not in grid.metrics
    assert "best_epoch" not in grid.checkpoint
    lstm = create_head("lstm", {"lr": 1e-3, "epochs": 2, "batch_size": 8, "hidden_size": 4,
                                "num_layers": 1, "dropout": 0.0}).fit(config, x, y, index,
                                                                      progress=False)
    assert list(lstm.history["epoch"]) == [1, 2] and lstm.metrics["best_epoch"] in (1, 2)


@pytest.mark.parametrize("name", ["svr", "mlp"])  # ridge is linear in the targets anyway
def test_grid_heads_fit_z_scored_targets_so_the_score_scale_does_not_matter(name, tmp_path):
    """#35: a kernel or MLP head fits the targets z-scored on the training part and maps back,
    so the same scores on another scale (×100, +5) choose the same strength and give the same
    predictions on that scale (on raw targets an SVR's epsilon and C, an MLP's steps, would
    not); the saved head (plain arrays) scores the same."""
    from vidmem.learn.heads import ArrayHead, estimator_state, fit_head

    rng = np.random.default_rng(2)
    x = rng.normal(size=(120, 6))
    y = 0.6 + 0.05 * np.tanh(x[:, 0] - 0.5 * x[:, 1]) + rng.normal(0, 0.01, 120)
    parts = slice(0, 80), slice(80, 120)
    small = fit_head(name, x[parts[0]], y[parts[0]], x[parts[1]], y[parts[1]])
    large = fit_head(name, x[parts[0]], 100 * y[parts[0]] + 5, x[parts[1]],
                     100 * y[parts[1]] + 5)
    assert small.strength == large.strength
    np.testing.assert_allclose(large.predict(x), 100 * small.predict(x) + 5, rtol=1e-6,
                               atol=1e-4)
    saved = ArrayHead(estimator_state(name, large.model))
    np.testing.assert_allclose(saved.predict(x), large.predict(x), rtol=1e-6, atol=1e-6)
