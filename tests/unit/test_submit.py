import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from audiofold.errors import DataError
from audiofold.postprocess import finalize_predictions
from audiofold.submit import make_submission, validate_submission
from audiofold.tasks import TaskSpec

REG = TaskSpec("regression", "id", ["score"], scale={"min": 1.0, "max": 5.0, "step": 0.5})
MULTI = TaskSpec("multitarget", "id", ["valence", "arousal"], scale={"min": 1.0, "max": 9.0, "step": None})
CLS = TaskSpec("classification", "id", ["label"], classes=["cat", "dog", "owl"])
ML_STR = TaskSpec("multilabel", "fname", ["labels"], classes=["a", "b", "c"], label_sep=",")
ML_WIDE = TaskSpec("multilabel", "fname", ["a", "b", "c"], classes=["a", "b", "c"])


def csv_round_trip(df):
    return pd.read_csv(io.StringIO(df.to_csv(index=False)))


# ---- finalize -----------------------------------------------------------------------------
def test_finalize_rounds_to_the_grid_and_clips():
    P = np.array([[0.2], [1.26], [2.74], [4.9], [7.0]])
    np.testing.assert_array_equal(finalize_predictions(P, REG), [[1.0], [1.5], [2.5], [5.0], [5.0]])


def test_finalize_without_step_only_clips_and_scores_are_clipped():
    ratings = np.array([[0.0, 3.3], [9.5, 5.0]])
    np.testing.assert_array_equal(finalize_predictions(ratings, MULTI), [[1.0, 3.3], [9.0, 5.0]])
    np.testing.assert_array_equal(finalize_predictions(np.array([[-0.1, 0.4, 1.2]]), ML_WIDE), [[0.0, 0.4, 1.0]])
    P = np.array([[0.2, 0.3, 0.5]])
    np.testing.assert_array_equal(finalize_predictions(P, CLS), P)


@settings(max_examples=100, deadline=None)
@given(
    values=arrays(np.float64, st.integers(1, 20), elements=st.floats(-1e3, 1e3)),
    low=st.floats(-50, 50),
    span=st.floats(0.01, 100),
    step=st.sampled_from([None, 0.01, 0.1, 0.25, 0.5, 1.0, 2.0, 1 / 3]),
)
def test_finalized_ratings_lie_on_the_grid_and_in_range(values, low, span, step):
    assume(step is None or step <= span)  # at least two grid points
    task = TaskSpec("regression", "id", ["y"], scale={"min": low, "max": low + span, "step": step})
    out = finalize_predictions(values.reshape(-1, 1), task)
    assert np.all((out >= low) & (out <= low + span))
    if step is not None:
        units = (out - low) / step
        np.testing.assert_allclose(units, np.round(units), atol=1e-6)
    # and the submission check agrees
    sub = pd.DataFrame({"id": [str(i) for i in range(len(out))], "y": out[:, 0]})
    validate_submission(sub, None, task)


# ---- make_submission ----------------------------------------------------------------------
def test_rows_follow_the_sample_ids_and_columns_its_order():
    sample = pd.DataFrame({"id": ["t3", "t1", "t2"], "arousal": 0.0, "valence": 0.0})
    P = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # rows for t1, t2, t3
    sub = make_submission(["t1", "t2", "t3"], P, MULTI, sample)
    assert list(sub.columns) == ["id", "arousal", "valence"]
    assert sub["id"].tolist() == ["t3", "t1", "t2"]
    assert sub["valence"].tolist() == [5.0, 1.0, 3.0] and sub["arousal"].tolist() == [6.0, 2.0, 4.0]
    validate_submission(sub, sample, MULTI)


def test_regression_values_are_finalized_and_sample_id_values_kept():
    sample = pd.DataFrame({"id": [20, 10], "score": 0.0})  # pandas reads numeric ids as ints
    sub = make_submission(["10", "20"], np.array([[1.3], [9.0]]), REG, sample)
    assert sub["id"].tolist() == [20, 10]
    assert sub["score"].tolist() == [5.0, 1.5]


def test_classification_probability_columns_in_sample_order():
    sample = pd.DataFrame({"id": ["x", "y"], "owl": 0.0, "cat": 0.0, "dog": 0.0})
    P = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    sub = make_submission(["x", "y"], P, CLS, sample)
    np.testing.assert_allclose(sub[["cat", "dog", "owl"]].to_numpy(), P)
    assert list(sub.columns) == ["id", "owl", "cat", "dog"]
    validate_submission(sub, sample, CLS)


def test_classification_label_column_holds_the_argmax_class():
    sample = pd.DataFrame({"id": ["x", "y"], "label": "cat"})
    sub = make_submission(["y", "x"], np.array([[0.1, 0.3, 0.6], [0.2, 0.7, 0.1]]), CLS, sample)
    assert sub["label"].tolist() == ["dog", "owl"]
    validate_submission(csv_round_trip(sub), csv_round_trip(sample), CLS)


def test_multilabel_label_strings_use_threshold_and_keep_the_top_label():
    P = np.array([[0.9, 0.6, 0.1], [0.2, 0.3, 0.4]])
    sub = make_submission(["f1", "f2"], P, ML_STR, None, threshold=0.5)
    assert list(sub.columns) == ["fname", "labels"]
    assert sub["labels"].tolist() == ["a,b", "c"]
    validate_submission(sub, None, ML_STR)


def test_multilabel_wide_scores_by_default_and_from_sample():
    P = np.array([[0.9, 0.6, 0.1], [0.2, 0.3, 0.4]])
    sub = make_submission(["f1", "f2"], P, ML_WIDE, None)
    assert list(sub.columns) == ["fname", "a", "b", "c"]
    sample = pd.DataFrame({"fname": ["f2", "f1"], "c": 0, "a": 0, "b": 0})
    sub = make_submission(["f1", "f2"], P, ML_WIDE, sample)
    assert sub.iloc[0].tolist() == ["f2", 0.4, 0.2, 0.3]


def test_default_layouts_without_sample():
    sub = make_submission(["b", "a"], np.array([[0.1, 0.8, 0.1], [0.5, 0.4, 0.1]]), CLS, None)
    assert list(sub.columns) == ["id", "label"] and sub["id"].tolist() == ["b", "a"]
    assert sub["label"].tolist() == ["dog", "cat"]


def test_sample_ids_that_differ_from_the_test_ids_are_listed():
    sample = pd.DataFrame({"id": ["t1", "t9"], "score": 0.0})
    with pytest.raises(DataError, match=r"1 missing .*t9.*1 unexpected .*t2"):
        make_submission(["t1", "t2"], np.ones((2, 1)), REG, sample)


def test_sample_columns_that_fit_no_layout_are_rejected():
    sample = pd.DataFrame({"id": ["x"], "cat": 0.0, "dog": 0.0})
    with pytest.raises(DataError, match="neither the 3 class names"):
        make_submission(["x"], np.array([[0.2, 0.3, 0.5]]), CLS, sample)


# ---- validate_submission ------------------------------------------------------------------
@pytest.fixture
def reg_pair():
    sample = pd.DataFrame({"id": ["a", "b", "c"], "score": 0.0})
    return make_submission(["a", "b", "c"], np.array([[1.0], [2.5], [5.0]]), REG, sample), sample


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda s: s.assign(score=[1.0, np.nan, 5.0]), "NaN"),
        (lambda s: s.assign(score=[1.0, np.inf, 5.0]), "NaN, inf"),
        (lambda s: s.assign(score=[1.0, 2.7, 5.0]), "off the scale grid"),
        (lambda s: s.assign(score=[1.0, 2.5, 5.5]), "above the scale maximum"),
        (lambda s: s.assign(score=[0.5, 2.5, 5.0]), "below the scale minimum"),
        (lambda s: s[["score", "id"]], "columns"),
        (lambda s: s.iloc[[1, 0, 2]].reset_index(drop=True), "order"),
        (lambda s: s.iloc[:2], r"1 missing .*'c'"),
        (lambda s: s.assign(id=["a", "b", "zz"]), r"1 unexpected .*'zz'"),
    ],
)
def test_validate_rejects_broken_regression_submissions(reg_pair, corrupt, message):
    sub, sample = reg_pair
    validate_submission(sub, sample, REG)  # the intact one passes
    with pytest.raises(DataError, match=message):
        validate_submission(corrupt(sub), sample, REG)


def test_validate_rejects_probabilities_outside_unit_interval_and_unknown_labels():
    sample = pd.DataFrame({"id": ["x"], "cat": 0.0, "dog": 0.0, "owl": 0.0})
    with pytest.raises(DataError, match=r"outside \[0, 1\].*'x'"):
        validate_submission(sample.assign(dog=1.2), sample, CLS)
    labels = pd.DataFrame({"fname": ["f1", "f2"], "labels": ["a,b", "a,zebra"]})
    with pytest.raises(DataError, match="unknown labels.*zebra"):
        validate_submission(labels, labels, ML_STR)
    with pytest.raises(DataError, match="empty labels"):
        validate_submission(labels.assign(labels=["a", None]), labels, ML_STR)


def test_auto_threshold_matches_the_label_rate_of_rank_blended_scores(tmp_path):
    """Rank-scaled blend scores: 0.5 would write half of all cells as labels; 'auto' learns the
    quantile on the OOF blend and writes about as many labels per clip as the truth has."""
    from scipy.stats import rankdata

    from audiofold.io import save_npz
    from audiofold.postprocess import label_mask, tune_label_quantile
    from audiofold.submit import write_submission

    rng = np.random.default_rng(0)
    n, k = 400, 3
    Y = np.zeros((n, k))
    Y[np.arange(n), rng.integers(0, k, n)] = 1  # one label per clip
    scores = Y + 0.6 * rng.standard_normal((n, k))
    ranks = ((rankdata(scores, axis=None) - 1) / (scores.size - 1)).reshape(scores.shape)
    oof, test = ranks[:300], ranks[300:]
    quantile = tune_label_quantile(oof, Y[:300])
    assert quantile > 0.5  # fewer labels than half of the cells
    assert label_mask(oof, np.quantile(oof, quantile)).sum(1).mean() < 1.5
    assert label_mask(oof, 0.5).sum(1).mean() > 1.4  # what a fixed 0.5 writes

    save_npz(tmp_path / "oof.npz", ids=np.arange(300).astype(str), y=Y[:300], P=oof.astype(np.float32))
    save_npz(tmp_path / "test.npz", ids=np.array([f"t{i}" for i in range(100)]), P=test.astype(np.float32))
    sub = write_submission(
        tmp_path / "test.npz", ML_STR, None, tmp_path / "sub.csv", threshold="auto", oof_blend_path=tmp_path / "oof.npz"
    )
    written = sub["labels"].str.split(",")
    assert written.map(len).mean() < 1.5
    truth = [",".join(np.array(["a", "b", "c"])[row > 0]) for row in Y[300:]]
    assert np.mean([t in w for t, w in zip(truth, written)]) > 0.7  # the true label is among those written


# ---- rounding to the rating step, decided on OOF ------------------------------------------
RATING = TaskSpec("regression", "id", ["score"], scale={"min": 1.0, "max": 5.0, "step": 1.0})


def rating_problem(noise, shrink, n=400, seed=0):
    """Ratings 1..5 and OOF predictions: shrunk towards the mean (a hedging blend) plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(1, 6, size=(n, 1)).astype(np.float64)
    return y, 3.0 + shrink * (y - 3.0) + rng.normal(0, noise, size=y.shape)


def test_auto_rounding_is_dropped_where_it_worsens_the_oof_rmse():
    from audiofold.postprocess import decide_rounding

    y, P = rating_problem(noise=0.5, shrink=0.5)  # hedging predictions: rounding adds error
    decision = decide_rounding(y, P, RATING, "auto")
    assert decision["rounded"] > decision["unrounded"] and decision["applied"] is False
    assert decision["criterion"] == "rmse" and decision["step"] == 1.0
    assert decide_rounding(y, P, RATING, "always")["applied"] is True
    clipped = finalize_predictions(P, RATING, round_to_step=False)
    assert clipped.min() >= 1.0 and clipped.max() <= 5.0 and not np.allclose(clipped, np.round(clipped))


def test_auto_rounding_is_kept_where_it_does_not_worsen():
    from audiofold.postprocess import decide_rounding

    y, P = rating_problem(noise=0.15, shrink=1.0)  # near the grid: rounding snaps to the truth
    decision = decide_rounding(y, P, RATING, "auto")
    assert decision["rounded"] <= decision["unrounded"] and decision["applied"] is True
    assert decide_rounding(y, P, RATING, "never")["applied"] is False
    assert decide_rounding(y, P, MULTI, "auto") == {
        "mode": "auto",
        "applied": False,
        "reason": "no rating step to round to",
    }


def test_unrounded_submission_validates_off_grid_but_not_out_of_range():
    sub = make_submission(["a", "b"], np.array([[1.26], [9.0]]), REG, None, round_to_step=False)
    assert sub["score"].tolist() == [1.26, 5.0]  # clipped, not rounded
    validate_submission(sub, None, REG, on_grid=False)
    with pytest.raises(DataError, match="off the scale grid"):
        validate_submission(sub, None, REG)
    with pytest.raises(DataError, match="above the scale maximum"):
        validate_submission(sub.assign(score=[1.26, 5.2]), None, REG, on_grid=False)


def test_write_submission_follows_the_blend_rounding_decision(tmp_path):
    from audiofold.io import save_npz, write_json
    from audiofold.submit import write_submission

    save_npz(tmp_path / "test.npz", ids=np.array(["a", "b"]), P=np.array([[1.3], [4.6]], dtype=np.float32))
    for applied, expected in ((False, [1.3, 4.6]), (True, [1.5, 4.5])):
        write_json(tmp_path / "weights.json", {"rounding": {"mode": "auto", "applied": applied}})
        sub = write_submission(
            tmp_path / "test.npz", REG, None, tmp_path / "sub.csv", blend_decisions_path=tmp_path / "weights.json"
        )
        np.testing.assert_allclose(sub["score"], expected, atol=1e-6)
