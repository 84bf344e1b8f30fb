import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import label_ranking_average_precision_score

from audiofold import metrics
from audiofold.errors import DataError
from audiofold.tasks import TaskSpec

REG = TaskSpec("regression", "id", ["score"], scale={"min": 1, "max": 5, "step": 1})
MULTI = TaskSpec("multitarget", "id", ["valence", "arousal"])
CLS = TaskSpec("classification", "id", ["label"], classes=["a", "b", "c"])
ML = TaskSpec("multilabel", "id", ["labels"], classes=["a", "b", "c", "d"], label_sep=",")


def brute_force_lwlrap(y, P):
    """Mean over positive (row, label) pairs of #positives ranked at or above / rank."""
    precisions = []
    for row_y, row_p in zip(y, P):
        order = list(np.argsort(-row_p))
        for label in np.flatnonzero(row_y):
            rank = order.index(label) + 1
            hits = sum(row_y[j] for j in order[:rank])
            precisions.append(hits / rank)
    return float(np.mean(precisions)) if precisions else 0.0


# ---- regression ---------------------------------------------------------------------------
def test_regression_metrics_known_values():
    y = np.array([[1.0], [2.0], [3.0], [4.0]])
    P = np.array([[2.0], [2.0], [3.0], [2.0]])
    scores = metrics.score(y, P, REG)
    assert scores["rmse"] == pytest.approx(np.sqrt((1 + 0 + 0 + 4) / 4))
    assert scores["mae"] == pytest.approx(3 / 4)
    assert scores["pearson"] == pytest.approx(np.corrcoef(y[:, 0], P[:, 0])[0, 1])
    assert set(scores) == {"rmse", "mae", "pearson"}


def test_pearson_is_zero_for_constant_predictions_and_undefined_for_constant_targets(caplog):
    y = np.array([[1.0], [2.0], [3.0]])
    assert metrics.pearson(y, np.full((3, 1), 2.0), REG) == 0.0  # the baseline: no correlation
    metrics._warned_constant_targets = False
    with caplog.at_level("WARNING", logger="audiofold.metrics"):
        assert np.isnan(metrics.pearson(np.full((3, 1), 2.0), y, REG))
    assert "targets are constant" in caplog.text and "undefined" in caplog.text


def test_an_undefined_score_is_null_in_json(tmp_path):
    from audiofold.io import read_json, write_json

    write_json(tmp_path / "m.json", {"pearson": float("nan"), "per": [np.float64("nan"), 0.5], "rmse": 1.0})
    assert "NaN" not in (tmp_path / "m.json").read_text()
    assert read_json(tmp_path / "m.json") == {"pearson": None, "per": [None, 0.5], "rmse": 1.0}


def test_multitarget_scores_have_per_target_keys_and_mean_overall():
    y = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    P = np.array([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])  # valence exact, arousal off by 1
    scores = metrics.score(y, P, MULTI)
    assert scores["rmse/valence"] == 0.0 and scores["rmse/arousal"] == pytest.approx(1.0)
    assert scores["rmse"] == pytest.approx(0.5)
    assert scores["mae/arousal"] == pytest.approx(1.0)
    assert scores["pearson/valence"] == pytest.approx(1.0) and np.isnan(scores["pearson/arousal"])  # constant truth
    assert scores["pearson"] == pytest.approx(1.0), "the mean over the targets where r is defined"


def test_shape_mismatch_is_a_data_error():
    with pytest.raises(DataError, match="shape"):
        metrics.rmse(np.zeros((3, 1)), np.zeros((4, 1)), REG)
    with pytest.raises(DataError, match="3 classes"):
        metrics.accuracy(np.array([0, 1]), np.zeros((2, 2)), CLS)


# ---- classification -----------------------------------------------------------------------
def test_classification_metrics_known_values():
    y = np.array([0, 1, 2, 2])
    P = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.5, 0.2, 0.3], [0.1, 0.1, 0.8]])
    scores = metrics.score(y, P, CLS)
    assert scores["accuracy"] == pytest.approx(0.75)
    expected_ll = -np.mean(np.log([0.8, 0.7, 0.3, 0.8]))
    assert scores["log_loss"] == pytest.approx(expected_ll, rel=1e-5)
    # per class F1: a 2/3 (1 tp, 1 fp), b 1, c 2/3 (1 tp, 1 fn)
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)


def test_log_loss_handles_classes_absent_from_y_and_zero_probabilities():
    y = np.array([0, 0])
    P = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    value = metrics.classification_log_loss(y, P, CLS)
    assert np.isfinite(value) and value > 5  # one confident miss is heavily penalised


# ---- multilabel ---------------------------------------------------------------------------
def test_lwlrap_hand_example():
    y = np.array([[1, 0, 1, 0], [0, 1, 0, 0]])
    P = np.array([[0.9, 0.8, 0.1, 0.0], [0.5, 0.4, 0.3, 0.2]])
    # row 0: label a at rank 1 -> 1; label c at rank 3 with 2 positives -> 2/3; row 1: b at rank 2 -> 1/2
    overall, per_class, weights = metrics.lwlrap_per_class(y, P)
    assert overall == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)
    np.testing.assert_allclose(per_class, [1.0, 0.5, 2 / 3, 0.0])
    np.testing.assert_allclose(weights, [1 / 3, 1 / 3, 1 / 3, 0.0])


def test_lwlrap_perfect_ranking_is_one_and_no_positives_is_zero():
    y = np.array([[1, 1, 0, 0], [0, 0, 0, 1]])
    assert metrics.lwlrap(y, y.astype(float), ML) == pytest.approx(1.0)  # tied positives still rank on top
    assert metrics.lwlrap(np.zeros((2, 4)), np.ones((2, 4)), ML) == 0.0


def _distinct_scores(draw_shape):
    return arrays(np.float64, draw_shape, elements=st.integers(0, 10_000).map(lambda v: v / 10_000), unique=True)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(1, 8), c=st.integers(2, 6))
def test_lwlrap_matches_brute_force_and_weighted_sklearn_lrap(data, n, c):
    P = data.draw(_distinct_scores((n, c)))  # unique values: no ties
    y = data.draw(arrays(np.int64, (n, c), elements=st.integers(0, 1)))
    overall, per_class, weights = metrics.lwlrap_per_class(y, P)
    assert overall == pytest.approx(brute_force_lwlrap(y, P))
    if y.sum() > 0:
        assert weights.sum() == pytest.approx(1.0)
        # sklearn's LRAP averages per row; weighting rows by their positives gives per-pair averaging
        expected = label_ranking_average_precision_score(y, P, sample_weight=y.sum(axis=1))
        assert overall == pytest.approx(expected)


def test_lwlrap_matches_weighted_sklearn_lrap_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(40, 5))
    y[0] = 1  # a row with every label positive: sklearn scores it 1, so must we
    P = rng.integers(0, 3, size=(40, 5)) / 2  # many tied scores
    # ties count against a label in both (a tied negative is ranked at or above it)
    expected = label_ranking_average_precision_score(y, P, sample_weight=y.sum(axis=1))
    assert metrics.lwlrap(y, P, ML) == pytest.approx(expected)


def test_map_averages_only_classes_with_positives():
    y = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]])
    P = np.array([[0.9, 0.1, 0.5, 0.5], [0.2, 0.3, 0.5, 0.5], [0.1, 0.8, 0.5, 0.5]])
    # class a: positives at ranks 1 and 3 -> AP = (1 + 2/3) / 2; class b: its positive at rank 2 -> 1/2;
    # classes c, d have no positives and are left out
    assert metrics.mean_average_precision(y, P, ML) == pytest.approx((5 / 6 + 1 / 2) / 2)


# ---- registry & baseline ------------------------------------------------------------------
def test_registry_and_primary():
    assert metrics.metrics_for("multilabel") == ["lwlrap", "map"]
    assert metrics.primary("regression") == ("rmse", False)
    assert metrics.primary("multitarget") == ("rmse", False)
    assert metrics.primary("classification") == ("accuracy", True)
    assert metrics.primary("multilabel") == ("lwlrap", True)
    for kind in ("regression", "classification", "multilabel"):
        assert all(name in metrics.METRICS for name in metrics.metrics_for(kind))
    with pytest.raises(DataError):
        metrics.primary("ranking")


def test_baseline_predictions_per_kind():
    y_reg = np.array([[1.0, 10.0], [3.0, 20.0]])
    np.testing.assert_allclose(metrics.baseline_predictions(y_reg, 3, MULTI), [[2.0, 15.0]] * 3)

    y_cls = np.array([1, 1, 1, 0])
    P = metrics.baseline_predictions(y_cls, 5, CLS)
    np.testing.assert_allclose(P, [[0.25, 0.75, 0.0]] * 5)
    assert metrics.accuracy(np.array([1, 1, 0, 2, 1]), P, CLS) == pytest.approx(3 / 5)  # majority class

    y_ml = np.array([[1, 0, 0, 1], [1, 1, 0, 0]], dtype=np.float32)
    np.testing.assert_allclose(metrics.baseline_predictions(y_ml, 2, ML), [[1.0, 0.5, 0.0, 0.5]] * 2)
