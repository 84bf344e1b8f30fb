import numpy as np
import pytest
from scipy.special import expit, softmax

from audiofold import metrics
from audiofold.ensemble.calibrate import calibrate_candidate
from audiofold.errors import DataError
from audiofold.tasks import TaskSpec

REG = TaskSpec("regression", "id", ["score"], scale={"min": 0, "max": 10, "step": None})
CLS = TaskSpec("classification", "id", ["label"], classes=["a", "b", "c"])
ML = TaskSpec("multilabel", "id", ["labels"], classes=["a", "b", "c", "d"], label_sep=",")

DECISION_KEYS = {
    "method",
    "criterion",
    "greater_is_better",
    "before",
    "after",
    "applied",
    "primary_before",
    "primary_after",
}


def folds_for(n, k=4):
    return np.arange(n) % k


def overconfident_classification(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), y] += 1.0
    return y, softmax(4.0 * logits, axis=1)  # right ranking, far too confident


def test_regression_isotonic_fixes_a_distorted_scale():
    rng = np.random.default_rng(0)
    y = rng.uniform(0, 10, size=(300, 1))
    oof = np.sqrt(y) + rng.normal(0, 0.05, size=y.shape)  # monotone but wrong scale
    test = np.sqrt(np.array([[1.0], [4.0], [9.0]]))
    oof_cal, test_cal, decision = calibrate_candidate(oof, y, folds_for(300), test, REG)
    assert set(decision) == DECISION_KEYS
    assert decision["method"] == "isotonic" and decision["criterion"] == "rmse"
    assert decision["applied"] and decision["after"] < 0.5 * decision["before"]
    assert decision["after"] == pytest.approx(metrics.rmse(y, oof_cal))
    assert decision["primary_after"] == pytest.approx(decision["after"])  # primary is rmse too
    np.testing.assert_allclose(test_cal[:, 0], [1.0, 4.0, 9.0], atol=0.6)


def test_calibration_is_cross_fitted():
    """Fold k's calibrated OOF rows must not depend on fold k's own targets."""
    rng = np.random.default_rng(1)
    y = rng.uniform(0, 10, size=(200, 1))
    oof = y**2 / 10 + rng.normal(0, 0.1, size=y.shape)
    folds = folds_for(200)
    before, _, _ = calibrate_candidate(oof, y, folds, oof[:3], REG)
    y_changed = y.copy()
    y_changed[folds == 0] = 10 - y_changed[folds == 0]
    after, _, _ = calibrate_candidate(oof, y_changed, folds, oof[:3], REG)
    np.testing.assert_array_equal(before[folds == 0], after[folds == 0])
    assert not np.allclose(before[folds == 1], after[folds == 1])


def test_test_prediction_is_the_mean_of_the_fold_calibrators():
    y, oof = overconfident_classification()
    folds = folds_for(len(y), k=2)
    _, test_two, _ = calibrate_candidate(oof, y, folds, oof[:5], CLS)
    _, test_four, _ = calibrate_candidate(oof, y, folds_for(len(y), k=4), oof[:5], CLS)
    # different fold splits give different calibrators, so the means differ slightly
    assert not np.array_equal(test_two, test_four)
    np.testing.assert_allclose(test_two, test_four, atol=0.05)


def test_uninformative_calibration_is_not_applied_and_inputs_come_back():
    rng = np.random.default_rng(2)
    y = rng.uniform(0, 10, size=(40, 1))
    oof = y.copy()  # already perfect: cross-fitted isotonic can only lose
    test = rng.uniform(0, 10, size=(5, 1))
    oof_out, test_out, decision = calibrate_candidate(oof, y, folds_for(40), test, REG)
    assert decision["applied"] is False
    assert decision["after"] >= decision["before"] == 0.0
    assert oof_out is oof and test_out is test


def test_classification_temperature_scaling_reduces_log_loss():
    y, oof = overconfident_classification()
    test = oof[:7]
    oof_cal, test_cal, decision = calibrate_candidate(oof, y, folds_for(len(y)), test, CLS)
    assert decision["method"] == "temperature" and decision["criterion"] == "log_loss"
    assert decision["applied"] and decision["after"] < decision["before"]
    assert decision["after"] == pytest.approx(metrics.classification_log_loss(y, oof_cal, CLS))
    np.testing.assert_allclose(oof_cal.sum(axis=1), 1.0)
    np.testing.assert_allclose(test_cal.sum(axis=1), 1.0)
    # one temperature keeps each row's argmax, so accuracy cannot change
    assert decision["primary_after"] == decision["primary_before"]
    np.testing.assert_array_equal(test_cal.argmax(axis=1), test.argmax(axis=1))


def shifted_tags(n=400, seed=3, offsets=(3.0, 0.0, -2.0, 0.5)):
    """Tags whose scores are right within each class but shifted per class: a class scored too
    high outranks the true tags of its row (seed 002: one temperature per class)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, size=(n, 4))
    y = (rng.random((n, 4)) < expit(logits)).astype(np.float32)
    return y, expit(logits + np.asarray(offsets))


def test_multilabel_calibration_per_class_lifts_lwlrap():
    y, oof = shifted_tags()
    oof_cal, test_cal, decision = calibrate_candidate(oof, y, folds_for(len(y)), oof[:4], ML)
    assert decision["method"] == "platt_per_class"
    assert decision["criterion"] == "lwlrap" and decision["greater_is_better"] is True
    # one global temperature keeps every row's class order, so LWLRAP could not move; per class it does
    assert decision["applied"] and decision["after"] > decision["before"] + 0.05
    assert decision["after"] == pytest.approx(metrics.lwlrap(y, oof_cal))
    assert decision["primary_after"] == pytest.approx(decision["after"])
    assert np.all((oof_cal > 0) & (oof_cal < 1)) and test_cal.shape == (4, 4)
    # and it survives the blend's rank transform, which a global monotone map would not
    from audiofold.ensemble.blend import rank_matrix

    assert metrics.lwlrap(y, rank_matrix(oof_cal)) == pytest.approx(decision["after"])


def test_multilabel_per_class_fit_recovers_the_shifts():
    from audiofold.ensemble.calibrate import _fit_platt_per_class

    offsets = np.array([3.0, 0.0, -2.0, 0.5])
    y, oof = shifted_tags(n=4000, seed=5, offsets=offsets)
    scale, bias = _fit_platt_per_class(oof, y)
    np.testing.assert_allclose(scale, 1.0, atol=0.15)
    np.testing.assert_allclose(bias, -offsets, atol=0.25)


def test_multilabel_calibration_that_does_not_lift_lwlrap_is_dropped():
    # scores already calibrated per class: a cross-fitted refit can only add noise to the ranking
    y, oof = shifted_tags(n=120, seed=0, offsets=(0.0, 0.0, 0.0, 0.0))
    oof_out, _, decision = calibrate_candidate(oof, y, folds_for(120), oof[:2], ML)
    assert decision["after"] < decision["before"] and decision["applied"] is False
    assert oof_out is oof


def test_bad_inputs_are_data_errors():
    y, oof = overconfident_classification(20)
    with pytest.raises(DataError, match="2 folds"):
        calibrate_candidate(oof, y, np.zeros(20, dtype=int), oof, CLS)
    with pytest.raises(DataError, match="must match"):
        calibrate_candidate(oof, y[:10], folds_for(20), oof, CLS)
    broken = oof.copy()
    broken[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        calibrate_candidate(broken, y, folds_for(20), oof, CLS)
