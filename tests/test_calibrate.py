import numpy as np
import pytest
from scipy.special import expit, softmax

from audiofold import metrics
from audiofold.calibrate import binary_cross_entropy, calibrate_candidate
from audiofold.errors import DataError
from audiofold.tasks import TaskSpec

REG = TaskSpec("regression", "id", ["score"], scale={"min": 0, "max": 10, "step": None})
CLS = TaskSpec("classification", "id", ["label"], classes=["a", "b", "c"])
ML = TaskSpec("multilabel", "id", ["labels"], classes=["a", "b", "c", "d"], label_sep=",")

DECISION_KEYS = {"method", "criterion", "before", "after", "applied", "primary_before", "primary_after"}


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


def test_multilabel_sigmoid_temperature_reduces_cross_entropy():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 1.5, size=(300, 4))
    y = (rng.random((300, 4)) < expit(logits)).astype(np.float32)
    oof = expit(5.0 * logits)  # overconfident
    oof_cal, test_cal, decision = calibrate_candidate(oof, y, folds_for(300), oof[:4], ML)
    assert decision["criterion"] == "binary_cross_entropy"
    assert decision["applied"] and decision["after"] < decision["before"]
    assert decision["after"] == pytest.approx(binary_cross_entropy(y, oof_cal))
    assert np.all((oof_cal > 0) & (oof_cal < 1)) and test_cal.shape == (4, 4)
    # a monotone map per row keeps the within-row ranking, hence lwlrap
    assert decision["primary_after"] == pytest.approx(decision["primary_before"])


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
