import joblib
import numpy as np
import pytest
from scipy.special import softmax

from audiofold import metrics
from audiofold.errors import ConfigError
from audiofold.heads import HEADS, Head, build_head
from audiofold.heads.linear import AUTO_CS, DEFAULT_C
from audiofold.tasks import TaskSpec

REG = TaskSpec("regression", "id", ["score"])
MULTI = TaskSpec("multitarget", "id", ["valence", "arousal"])
CLS = TaskSpec("classification", "id", ["label"], classes=["a", "b", "c"])
ML = TaskSpec("multilabel", "id", ["labels"], classes=["a", "b", "c"], label_sep=",")


def make_X(n=60, d=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


# ---- registry -----------------------------------------------------------------------------
def test_registry_builds_heads_with_options():
    head = build_head({"type": "knn", "k": 3, "temperature": 0.5}, CLS, seed=1)
    assert isinstance(head, HEADS["knn"]) and isinstance(head, Head)
    assert head.describe() == {"type": "knn", "seed": 1, "params": {"k": 3, "temperature": 0.5}}


def test_unknown_type_and_option_name_the_config_key():
    with pytest.raises(ConfigError, match=r"heads\.gru\.type.*knn, lgbm, linear"):
        build_head({"type": "gru"}, REG, seed=0)
    with pytest.raises(ConfigError, match=r"heads\.linear\.alpah.*alpha"):
        build_head({"type": "linear", "alpah": 2.0}, REG, seed=0)
    with pytest.raises(ConfigError, match=r"heads\.knn_small\.k"):
        build_head({"type": "knn", "k": 0}, REG, seed=0, name="knn_small")
    with pytest.raises(ConfigError, match=r"heads\.knn\.temperature: must be a positive number"):
        build_head({"type": "knn", "temperature": "0.1"}, REG, seed=0)
    with pytest.raises(ConfigError, match=r"heads\.linear\.alpha"):
        build_head({"type": "linear", "alpha": -1.0}, REG, seed=0)


# ---- linear -------------------------------------------------------------------------------
def test_linear_regression_fits_a_linear_target_and_handles_multitarget():
    X = make_X()
    y = np.column_stack([X @ np.arange(6), X[:, 0] - X[:, 1]]).astype(np.float32)
    head = build_head({"type": "linear", "alpha": 0.01}, MULTI, seed=0).fit(X, y)
    P = head.predict(X)["main"]
    assert P.shape == (60, 2)
    assert metrics.rmse(y, P) < 0.05 * metrics.rmse(y, metrics.baseline_predictions(y, 60, MULTI))

    single = build_head({"type": "linear"}, REG, seed=0).fit(X, y[:, :1])
    assert single.predict(X[:5])["main"].shape == (5, 1)


def test_linear_classification_keeps_all_class_columns_when_a_class_is_absent():
    X = make_X()
    y = np.where(X[:, 0] > 0, 2, 0)  # class "b" (index 1) never occurs in this fold
    P = build_head({"type": "linear"}, CLS, seed=0).fit(X, y).predict(X)["main"]
    assert P.shape == (60, 3)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    assert np.all(P[:, 1] == 0.0)
    assert metrics.accuracy(y, P, CLS) > 0.9


def test_linear_classification_with_a_single_class_fold_predicts_that_class():
    X = make_X(10)
    P = build_head({"type": "linear"}, CLS, seed=0).fit(X, np.full(10, 2)).predict(X)["main"]
    np.testing.assert_array_equal(P, np.tile([0.0, 0.0, 1.0], (10, 1)))


def test_linear_multilabel_constant_columns_predict_their_frequency():
    X = make_X()
    y = np.column_stack([X[:, 0] > 0, np.zeros(60), np.ones(60)]).astype(np.float32)
    head = build_head({"type": "linear"}, ML, seed=0)
    assert head.params["C"] == "auto"
    P = head.fit(X, y).predict(X)["main"]
    assert head.chosen_C in AUTO_CS
    assert P.shape == (60, 3)
    np.testing.assert_array_equal(P[:, 1], 0.0)
    np.testing.assert_array_equal(P[:, 2], 1.0)
    assert metrics.lwlrap(y, P) > 0.9


def test_linear_default_C_is_auto_and_a_number_overrides_it():
    assert build_head({"type": "linear"}, CLS, seed=0).params["C"] == "auto"
    X = make_X()
    y = (X[:, 0] > 0).astype(np.float32)[:, None].repeat(3, axis=1)
    head = build_head({"type": "linear", "C": 0.5}, ML, seed=0).fit(X, y)
    assert head.chosen_C == 0.5 and head.describe()["cv_log_loss"] is None
    with pytest.raises(ConfigError, match=r"heads\.linear\.C"):
        build_head({"type": "linear", "C": "big"}, CLS, seed=0)
    # a fold too small for an inner CV falls back to the kind's fixed C
    assert (
        build_head({"type": "linear"}, CLS, seed=0).fit(make_X(3), np.array([0, 1, 1])).chosen_C
        == DEFAULT_C["classification"]
    )


def _noisy_wide_problem(seed, n, d=120, groups_of=1):
    """Few rows, many noise dims, three signal dims: strong regularisation (small C) is right.
    Rows come in groups of ``groups_of`` sharing an offset (a "speaker")."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.digitize(X[:, :3].sum(axis=1) + 0.5 * rng.standard_normal(n), [-0.8, 0.8])
    groups = np.arange(n) // groups_of
    X[:, 3:] += rng.standard_normal((n // groups_of + 1, d - 3))[groups]
    return X, y, groups


def test_linear_C_auto_beats_fixed_C_on_held_out_rows_and_is_deterministic():
    X, y, _ = _noisy_wide_problem(0, 80)
    X_new, y_new, _ = _noisy_wide_problem(1, 600)
    losses, heads = {}, {}
    for C in ("auto", 1.0):
        heads[C] = build_head({"type": "linear", "C": C}, CLS, seed=0).fit(X, y)
        losses[C] = metrics.score(y_new, heads[C].predict(X_new)["main"], CLS)["log_loss"]
    assert heads["auto"].chosen_C < 0.1
    assert losses["auto"] < 0.8 * losses[1.0]
    again = build_head({"type": "linear"}, CLS, seed=0).fit(X, y)
    np.testing.assert_array_equal(again.predict(X_new)["main"], heads["auto"].predict(X_new)["main"])
    assert heads["auto"].describe()["chosen_C"] == heads["auto"].chosen_C


def test_linear_C_auto_keeps_groups_on_one_side_of_each_inner_split():
    X, y, groups = _noisy_wide_problem(0, 80, groups_of=5)
    head = build_head({"type": "linear"}, CLS, seed=0)
    splits = head._inner_splits(y, groups)
    assert len(splits) == 3
    for train, val in splits:
        assert not set(groups[train]) & set(groups[val])
    head.fit(X, y, groups=groups)
    assert head.chosen_C in AUTO_CS


def test_linear_is_deterministic_and_survives_joblib(tmp_path):
    X = make_X()
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    first = build_head({"type": "linear"}, CLS, seed=3).fit(X, y)
    second = build_head({"type": "linear"}, CLS, seed=3).fit(X, y)
    np.testing.assert_array_equal(first.predict(X)["main"], second.predict(X)["main"])
    joblib.dump(first, tmp_path / "head.joblib")
    loaded = joblib.load(tmp_path / "head.joblib")
    np.testing.assert_array_equal(loaded.predict(X)["main"], first.predict(X)["main"])


# ---- knn ----------------------------------------------------------------------------------
def test_knn_weights_are_softmax_of_cosine_similarity_over_temperature():
    X_train = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    y = np.array([[1.0], [5.0], [9.0]], dtype=np.float32)
    head = build_head({"type": "knn", "k": 2, "temperature": 0.5}, REG, seed=0).fit(X_train, y)
    query = np.array([[1.0, 1.0]])  # cosine 0.707 to the first two, -0.707 to the third
    sim = np.array([np.sqrt(0.5), np.sqrt(0.5)])
    expected = softmax(sim / 0.5) @ np.array([1.0, 5.0])
    np.testing.assert_allclose(head.predict(query)["main"], [[expected]])


def test_knn_nearer_neighbours_weigh_more_and_low_temperature_picks_the_nearest():
    X_train = np.array([[1.0, 0.0], [1.0, 1.0]])
    y = np.array([[0.0], [10.0]], dtype=np.float32)
    query = np.array([[1.0, 0.1]])  # much closer (in angle) to the first point
    sharp = build_head({"type": "knn", "k": 2, "temperature": 0.01}, REG, seed=0).fit(X_train, y)
    soft = build_head({"type": "knn", "k": 2, "temperature": 10.0}, REG, seed=0).fit(X_train, y)
    assert sharp.predict(query)["main"][0, 0] < 0.1
    assert 4.0 < soft.predict(query)["main"][0, 0] < 5.0


def test_knn_clips_k_to_the_training_size_and_gives_class_distributions():
    X = make_X(5)
    y = np.array([0, 1, 2, 1, 1])
    P = build_head({"type": "knn", "k": 50}, CLS, seed=0).fit(X, y).predict(make_X(8, seed=1))["main"]
    assert P.shape == (8, 3)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    assert np.all(P >= 0)


def test_knn_multilabel_scores_are_weighted_label_means():
    X = make_X(30)
    y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0, np.zeros(30)]).astype(np.float32)
    P = build_head({"type": "knn", "k": 5}, ML, seed=0).fit(X, y).predict(X)["main"]
    assert P.shape == (30, 3)
    assert np.all((P >= 0) & (P <= 1))
    np.testing.assert_array_equal(P[:, 2], 0.0)
    assert metrics.lwlrap(y, P) > 0.8


def test_linear_alpha_auto_regularises_wide_features():
    """Nearly as many features as rows (aisfx's 512-d on 600 utterances): the old fixed alpha 1.0
    overfits, 'auto' (leave-one-out inside the fit) does not."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 180))
    y = X[:, 0] + 0.5 * rng.standard_normal(200)
    X_new = rng.standard_normal((300, 180))
    y_new = X_new[:, 0]
    errors = {}
    for alpha in ("auto", 1.0):
        head = build_head({"type": "linear", "alpha": alpha}, REG, seed=0).fit(X, y)
        errors[alpha] = float(np.sqrt(np.mean((head.predict(X_new)["main"].ravel() - y_new) ** 2)))
    assert errors["auto"] < 0.7 * errors[1.0]
    with pytest.raises(ConfigError, match=r"heads\.linear\.alpha"):
        build_head({"type": "linear", "alpha": "big"}, REG, seed=0)
