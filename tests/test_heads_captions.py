"""Caption features and the non-sequence heads: nothing from validation or test leaks into what
is fit, and the regularisation is the one validation prefers."""

from __future__ import annotations

import numpy as np
import pytest

from vidmem.backends.text import CaptionFeatures
from vidmem.core.errors import DataError, ParamsError
from vidmem.data.groundtruth import read_captions, read_ground_truth
from vidmem.learn.heads import fit_head, mean_pooled
from vidmem.learn.metrics import spearman

from conftest import TEST_DATA

CAPTIONS = {"a.webm": "red car on a road", "b.webm": "blue car at night",
            "c.webm": "dog on a beach", "d.webm": "zebra crossing savanna"}


def test_tfidf_vocabulary_is_fit_on_training_captions_only():
    features = CaptionFeatures().fit(CAPTIONS, ["a.webm", "b.webm", "c.webm"])
    assert "car" in features.vocabulary and "zebra" not in features.vocabulary
    test_row = features.transform(CAPTIONS, ["d.webm"])
    assert test_row.nnz == 0  # its words were never seen in training: no features, no leak


def test_missing_captions_are_reported_not_paired():
    with pytest.raises(DataError, match="no caption, e.g. \\['e.webm'\\]"):
        CaptionFeatures().fit(CAPTIONS, ["a.webm", "e.webm"])
    features = CaptionFeatures().fit(CAPTIONS, ["a.webm"])
    with pytest.raises(DataError, match="x.webm"):
        features.transform(CAPTIONS, ["x.webm"])


def test_real_captions_cover_every_labelled_video():
    captions = read_captions(TEST_DATA / "mediaeval2018" / "dev-set_video-captions.txt")
    truth = read_ground_truth(TEST_DATA / "mediaeval2018" / "ground-truth_dev-set.csv")
    labelled = list(truth.table.index)
    assert len(labelled) == 8000 and set(labelled) == set(captions)  # one caption per video
    features = CaptionFeatures().fit(captions, sorted(captions)[:500])
    held_out = features.transform(captions, sorted(captions)[500:600])
    # Real titles share words: most held-out captions get features from the training
    # vocabulary, and different captions get different rows.
    rows_with_terms = int((np.diff(held_out.indptr) > 0).sum())
    assert held_out.shape[0] == 100 and rows_with_terms >= 80
    assert len({held_out[i].toarray().tobytes() for i in range(100)}) >= 75


@pytest.mark.parametrize("kind", ["ridge", "svr"])
def test_head_keeps_the_strength_validation_prefers(kind):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    y = x[:, 0] + 0.5 * rng.normal(size=300)
    head = fit_head(kind, x[:200], y[:200], x[200:250], y[200:250])
    scores = {row["strength"]: row["val_spearman"] for row in head.grid}
    assert head.strength == max(scores, key=scores.get)
    assert head.val_spearman == scores[head.strength]
    assert spearman(y[250:], head.predict(x[250:])) > 0.5  # it learned the signal


def test_unknown_head_and_mean_pooling():
    with pytest.raises(ParamsError, match="unknown head 'tree'"):
        fit_head("tree", np.zeros((2, 1)), np.zeros(2), np.zeros((2, 1)), np.zeros(2))
    features = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(mean_pooled(features), features.mean(axis=1))


def test_captions_model_reloaded_in_a_fresh_process_scores_new_captions_the_same(tmp_path):
    """The fitted TF-IDF travels in the checkpoint as plain values; reloaded by another process
    it gives the training-time vectors, and the scored captions add nothing to the vocabulary."""
    import subprocess
    import sys

    from vidmem.learn.training import save_checkpoint

    fitted = CaptionFeatures().fit(CAPTIONS, ["a.webm", "b.webm", "c.webm"])
    new = {"n1.webm": "red car crossing a zebra bridge", "n2.webm": "unicorn galaxy parade",
           "n3.webm": "dog at night on a beach"}
    expected = fitted.transform(new, sorted(new)).toarray()
    save_checkpoint({"head": "ridge", "backend_state": fitted.state()}, tmp_path / "m.pt")
    script = (
        "import sys, json, numpy as np, torch\n"
        "from vidmem.backends.text import CaptionFeatures, checked_tfidf_state\n"
        "state = torch.load(sys.argv[1], weights_only=True)['backend_state']\n"
        "new = json.loads(sys.argv[2])\n"
        "tfidf = CaptionFeatures.from_state(checked_tfidf_state(state, sys.argv[1]))\n"
        "np.save(sys.argv[3], tfidf.transform(new, sorted(new)).toarray())\n"
        "print(len(state['terms']))\n")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "m.pt"),
                             __import__("json").dumps(new), str(tmp_path / "x.npy")],
                            capture_output=True, text=True, check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), expected)
    assert int(result.stdout) == len(fitted.vocabulary)  # nothing was added by scoring
    terms = set(fitted.state()["terms"])
    assert not {"unicorn", "galaxy", "parade", "zebra", "bridge"} & terms
    assert not np.load(tmp_path / "x.npy")[1].any()  # only unseen words: the empty row
