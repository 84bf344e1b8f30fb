"""Adversarial validation: train-vs-test ROC AUC near 0.5 without shift, well above with it."""

import logging

import numpy as np

from audiofold.io import read_json, save_npz
from audiofold.report import shift_html
from audiofold.shift import WARN_AUC, adversarial_auc, shift_report


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
