"""Adversarial validation: train-vs-test ROC AUC near 0.5 without shift, well above with it; the
importance weights it gives the OOF rows and the shift-weighted estimate."""

import logging

import numpy as np
import pytest

from audiofold import metrics
from audiofold.errors import DataError
from audiofold.io import load_npz, read_json, save_npz
from audiofold.report import SHIFT_WEIGHTED, scores_table, shift_html, shift_weighted_entry, shift_weighted_html
from audiofold.shift import (
    WARN_AUC,
    WEIGHT_CLIP,
    adversarial,
    adversarial_auc,
    effective_sample_size,
    importance_weights,
    shift_report,
)
from audiofold.tasks import TaskSpec


def _sets(seed, shift):
    rng = np.random.default_rng(seed)
    X_train = rng.standard_normal((300, 64))
    X_test = rng.standard_normal((100, 64))
    X_test[:, :4] += shift  # e.g. another recording device moving a few embedding dimensions
    return X_train, X_test


def test_same_distribution_gives_auc_near_half_and_shift_gives_much_more():
    same = [adversarial_auc(*_sets(seed, 0.0), seed=0) for seed in range(3)]
    shifted = [adversarial_auc(*_sets(seed, 0.8), seed=0) for seed in range(3)]
    assert abs(np.mean(same) - 0.5) < 0.08
    assert min(shifted) > 0.75 > max(same)
    assert adversarial_auc(*_sets(0, 0.8), seed=0) == shifted[0]  # deterministic
    assert adversarial_auc(np.zeros((5, 3)), np.zeros((1, 3))) is None


def test_shift_report_writes_json_and_warns_above_the_threshold(tmp_path, caplog):
    X_train, X_test = _sets(0, 1.5)
    save_npz(tmp_path / "train0.npz", ids=np.array([f"a{i}" for i in range(300)]), X=X_train.astype(np.float32))
    save_npz(tmp_path / "test0.npz", ids=np.array([f"t{i}" for i in range(100)]), X=X_test.astype(np.float32))
    with caplog.at_level(logging.WARNING, logger="audiofold.shift"):
        info = shift_report([tmp_path / "train0.npz"], [tmp_path / "test0.npz"], "logmel", 0, tmp_path / "shift.json")
    assert info["auc"] > WARN_AUC and info["shifted"] and read_json(tmp_path / "shift.json") == info
    assert "test set looks different from training" in caplog.text
    assert "OOF scores may overstate" in shift_html(info)
    assert shift_html({**info, "auc": 0.52, "shifted": False}).count("ROC AUC 0.520") == 1
    assert shift_html(None) == ""


def test_large_sets_are_sampled_to_a_cap_and_still_show_the_shift(monkeypatch):
    import audiofold.shift as shift

    rng = np.random.default_rng(0)
    assert shift.cap_rows(np.arange(5)[:, None], 10, rng).shape == (5, 1)  # smaller: all rows
    sample = shift.cap_rows(np.arange(100)[:, None], 30, rng)
    assert sample.shape == (30, 1) and len(np.unique(sample)) == 30 and (np.diff(sample[:, 0]) > 0).all()

    X_train, X_test = _sets(1, 0.8)
    full = adversarial_auc(X_train, X_test, seed=0)
    monkeypatch.setattr(shift, "MAX_ROWS_PER_SIDE", 80)  # 300 train rows, 100 test rows -> 80 + 80
    kept = []  # rows per side that reach the classifier
    real_cap_rows = shift.cap_rows
    monkeypatch.setattr(
        shift, "cap_rows", lambda X, limit, rng: kept.append(len(rows := real_cap_rows(X, limit, rng))) or rows
    )
    capped = adversarial_auc(X_train, X_test, seed=0)
    assert kept == [80, 80]
    assert capped > 0.75 and abs(capped - full) < 0.1


# ---- the shift-weighted estimate ------------------------------------------------------------------
REG = TaskSpec("regression", "id", ["score"])
MULTI = TaskSpec("multitarget", "id", ["valence", "arousal"])
CLS = TaskSpec("classification", "id", ["label"], classes=["a", "b", "c"])
ML = TaskSpec("multilabel", "id", ["labels"], classes=["a", "b", "c", "d"], label_sep=",")


def _predictions(task, n, rng):
    if task.kind == "classification":
        y = rng.integers(0, 3, n)
        P = rng.dirichlet(np.ones(3), n) + 0.5 * np.eye(3)[y]
        return y, P / P.sum(axis=1, keepdims=True)
    if task.kind == "multilabel":
        y = (rng.random((n, 4)) < 0.3).astype(float)
        return y, 0.6 * y + rng.random((n, 4))
    y = rng.standard_normal((n, len(task.label_columns)))
    return y, y + rng.standard_normal(y.shape)


@pytest.mark.parametrize("task", [REG, MULTI, CLS, ML], ids=lambda t: t.kind)
def test_equal_weights_give_the_plain_score_and_weights_move_it(task):
    rng = np.random.default_rng(0)
    y, P = _predictions(task, 200, rng)
    plain = metrics.score(y, P, task)
    for w in (np.ones(len(y)), np.full(len(y), 3.5)):
        weighted = metrics.weighted_score(y, P, task, w)
        assert weighted.keys() == plain.keys()
        for key in plain:
            assert weighted[key] == pytest.approx(plain[key], abs=1e-9)
    # integer weights count a row that many times: the score of the table with the rows repeated
    w = rng.integers(0, 4, len(y))
    w[0] = 1
    repeated = np.repeat(np.arange(len(y)), w)
    expected = metrics.score(y[repeated], P[repeated], task)
    for key, value in metrics.weighted_score(y, P, task, w.astype(float)).items():
        assert value == pytest.approx(expected[key], abs=1e-9)
    with pytest.raises(DataError, match="row weights"):
        metrics.weighted_score(y, P, task, -np.ones(len(y)))


def _write_sets(tmp_path, X_train, X_test):
    save_npz(
        tmp_path / "train0.npz", ids=np.array([f"a{i}" for i in range(len(X_train))]), X=X_train.astype(np.float32)
    )
    save_npz(tmp_path / "test0.npz", ids=np.array([f"t{i}" for i in range(len(X_test))]), X=X_test.astype(np.float32))


def test_train_and_test_drawn_alike_leave_the_estimate_as_the_plain_one(tmp_path):
    X_train, X_test = _sets(0, 0.0)
    _write_sets(tmp_path, X_train, X_test)
    info = shift_report(
        [tmp_path / "train0.npz"], [tmp_path / "test0.npz"], "logmel", 0, tmp_path / "shift.json", tmp_path / "w.npz"
    )
    weights = load_npz(tmp_path / "w.npz")
    assert not info["shifted"] and not info["weights"]["applied"] and info["weights"]["effective_n"] == 300.0
    assert (weights["weight"] == 1).all() and weights["ids"].tolist() == [f"a{i}" for i in range(300)]
    # the weights themselves, computed anyway (from enough rows for the classifier to see no pattern):
    # near 1, and the weighted score near the plain one
    rng = np.random.default_rng(2)
    X_train, X_test = rng.standard_normal((1000, 16)), rng.standard_normal((300, 16))
    _, p_train = adversarial(X_train, X_test, seed=0)
    w = importance_weights(p_train, 1000, 300)
    assert effective_sample_size(w) > 0.9 * 1000
    y, P = _predictions(REG, 1000, rng)
    assert metrics.weighted_score(y, P, REG, w)["pearson"] == pytest.approx(
        metrics.score(y, P, REG)["pearson"], abs=0.02
    )


def test_shifted_test_set_weights_the_test_like_training_rows_up(tmp_path):
    rng = np.random.default_rng(0)
    X_train = rng.standard_normal((400, 16))
    X_train[:100, :3] += 1.5  # a quarter of training looks like the test set (one device, say)
    X_test = rng.standard_normal((100, 16))
    X_test[:, :3] += 1.5
    _write_sets(tmp_path, X_train, X_test)
    info = shift_report(
        [tmp_path / "train0.npz"], [tmp_path / "test0.npz"], "logmel", 0, tmp_path / "shift.json", tmp_path / "w.npz"
    )
    w = load_npz(tmp_path / "w.npz")["weight"]
    assert info["shifted"] and info["weights"]["applied"]
    assert w.mean() == pytest.approx(1.0) and w.max() <= WEIGHT_CLIP + 1e-9
    assert w[:100].mean() > 3 * w[100:].mean()
    assert info["weights"]["effective_n"] == pytest.approx(effective_sample_size(w), abs=0.1)
    assert info["weights"]["effective_n"] < 400
    # the model is poor on the test-like rows: the weighted score moves toward their score
    y = rng.standard_normal((400, 1))
    P = y + np.r_[np.full(100, 2.0), np.full(300, 0.3)][:, None] * rng.standard_normal((400, 1))
    plain, weighted = metrics.score(y, P, REG)["rmse"], metrics.weighted_score(y, P, REG, w)["rmse"]
    test_like = metrics.score(y[:100], P[:100], REG)["rmse"]
    assert plain < weighted < test_like


def test_the_report_puts_the_weighted_estimate_beside_the_nested_one(tmp_path):
    rng = np.random.default_rng(0)
    y, P = _predictions(REG, 60, rng)
    ids = np.array([f"a{i}" for i in range(60)])
    save_npz(tmp_path / "nested_oof.npz", ids=ids, fold=np.arange(60) % 3, y=y, P=P)
    w = np.r_[np.full(20, 2.5), np.full(40, 0.25)]
    save_npz(tmp_path / "w.npz", ids=ids[::-1], weight=w[::-1])  # matched by id, not by position
    shift = {"backbone": "logmel", "auc": 0.9, "shifted": True, "warn_above": WARN_AUC, "weights": {"clip": 10.0}}
    nested = {"overall": metrics.score(y, P, REG), "per_fold": {}}
    entry = shift_weighted_entry(tmp_path / "nested_oof.npz", tmp_path / "w.npz", shift, nested, REG)
    assert entry["overall"] == metrics.weighted_score(y, P, REG, w) and entry["overall"] != nested["overall"]
    assert entry["effective_n"] == pytest.approx(effective_sample_size(w), abs=0.1) and entry["n"] == 60
    assert set(entry["per_fold"]) == {0, 1, 2}
    summary = {
        "primary": "rmse",
        "candidates": {},
        "blend": {"in_sample": nested, "nested": nested, "weights": {}, "shift_weighted": entry},
    }
    table = scores_table(summary)
    assert table["candidate"].tolist()[-1] == SHIFT_WEIGHTED
    assert table["OOF rmse"].iloc[-1] == pytest.approx(entry["overall"]["rmse"])
    line = shift_weighted_html(entry, "rmse")
    assert f"effective sample size {entry['effective_n']:.0f} of 60" in line and "never used to choose" in line
    alike = shift_weighted_entry(
        tmp_path / "nested_oof.npz", tmp_path / "w.npz", {**shift, "shifted": False}, nested, REG
    )
    assert alike["overall"] is None and "nested score stands" in shift_weighted_html(alike, "rmse")
