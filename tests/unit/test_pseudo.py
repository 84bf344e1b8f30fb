"""Teacher-student round (audiofold.pseudo): the confidence rules, and train_fold's second round
seeing only its own training rows plus pseudo-labelled test rows."""

import joblib
import numpy as np
import pytest

from audiofold import pseudo
from audiofold.collect_oof import collect
from audiofold.errors import ConfigError
from audiofold.heads import LGBMHead, LinearHead
from audiofold.io import load_npz, read_json, save_npz
from audiofold.tasks import TaskSpec
from audiofold.train import train_fold

CLASSES = TaskSpec("classification", "id", ["y"], classes=["a", "b", "c"])
TAGS = TaskSpec("multilabel", "id", ["tags"], classes=["a", "b", "c"])
RATING = TaskSpec("regression", "id", ["rating"])
VA = TaskSpec("multitarget", "id", ["valence", "arousal"])
ON = {"enabled": True, "min_confidence": 0.8, "weight": "confidence"}


def test_classification_keeps_rows_whose_top_probability_reaches_the_threshold():
    P = np.array([[0.9, 0.05, 0.05], [0.5, 0.3, 0.2], [0.1, 0.8, 0.1], [0.0, 0.21, 0.79], [0.0, 0.0, 1.0]])
    sel = pseudo.select(P, CLASSES, 0.8, y_train=np.array([0, 1, 2]))
    np.testing.assert_array_equal(sel.rows, [0, 2, 4])
    np.testing.assert_array_equal(sel.y, [0, 1, 2])
    assert sel.y.dtype == np.int64
    np.testing.assert_allclose(sel.weight, [0.9, 0.8, 1.0])
    lower = pseudo.select(P, CLASSES, 0.51, y_train=np.array([0, 1, 2]))  # 0.5 is below it: not kept
    np.testing.assert_array_equal(lower.rows, [0, 2, 3, 4])
    np.testing.assert_array_equal(pseudo.select(P, CLASSES, 0.8, np.array([0]), weighted=False).weight, [1, 1, 1])


def test_multilabel_keeps_rows_with_every_tag_decided_and_one_positive():
    P = np.array(
        [
            [0.95, 0.1, 0.02],  # decided, one positive: kept
            [0.95, 0.5, 0.02],  # tag b undecided: left out whole
            [0.1, 0.05, 0.15],  # decided but no positive: left out
            [0.85, 0.9, 0.2],  # two positives: kept, weight = the largest
            [0.8, 0.2, 0.0],  # both bounds reached exactly: kept
        ]
    )
    y_train = np.array([[1, 0, 0]], dtype=np.float32)
    sel = pseudo.select(P, TAGS, 0.8, y_train)
    np.testing.assert_array_equal(sel.rows, [0, 3, 4])
    np.testing.assert_array_equal(sel.y, [[1, 0, 0], [1, 1, 0], [1, 0, 0]])
    assert sel.y.dtype == np.float32
    np.testing.assert_allclose(sel.weight, [0.95, 0.9, 0.8])


def test_regression_keeps_predictions_inside_the_training_range_at_half_weight():
    sel = pseudo.select(np.array([[1.0], [5.5], [3.2], [0.9]]), RATING, 0.8, y_train=np.array([1.0, 2.0, 5.0]))
    np.testing.assert_array_equal(sel.rows, [0, 2])
    np.testing.assert_allclose(sel.y, [1.0, 3.2])
    assert sel.y.shape == (2,)  # the training targets' shape
    np.testing.assert_allclose(sel.weight, [0.5, 0.5])
    y_va = np.array([[0.0, 0.0], [1.0, 1.0]])
    sel = pseudo.select(np.array([[0.5, 0.5], [0.5, 1.5], [1.0, 0.0]]), VA, 0.8, y_train=y_va)
    np.testing.assert_array_equal(sel.rows, [0, 2])  # every target inside its own range
    assert sel.y.shape == (2, 2)


def test_settings_fill_defaults_and_reject_bad_values():
    assert pseudo.settings(None) is None and pseudo.settings({"enabled": False, "min_confidence": 0.9}) is None
    assert pseudo.settings({"enabled": True}) == {"enabled": True, "min_confidence": 0.8, "weight": "confidence"}
    with pytest.raises(ConfigError, match="pseudo_labels.min_confidence"):
        pseudo.settings({"enabled": True, "min_confidence": 0.5})
    with pytest.raises(ConfigError, match="pseudo_labels.weight"):
        pseudo.settings({"enabled": True, "weight": "loud"})


def test_augment_appends_the_selected_rows_with_their_own_groups_and_weights():
    sel = pseudo.Selection(rows=np.array([1]), y=np.array([2]), weight=np.array([0.7]))
    X_test = np.array([[9.0, 9.0], [8.0, 8.0]])
    X, y, groups, w = pseudo.augment(np.zeros((2, 2)), np.array([0, 1]), np.array([5, 5]), X_test, ["t0", "t1"], sel)
    np.testing.assert_array_equal(X, [[0, 0], [0, 0], [8, 8]])
    np.testing.assert_array_equal(y, [0, 1, 2])
    np.testing.assert_array_equal(groups, ["5", "5", "test:t1"])
    np.testing.assert_allclose(w, [1, 1, 0.7])
    seqs, *_ = pseudo.augment(
        [np.zeros((3, 2))], np.array([0]), None, [np.ones((4, 2)), np.ones((5, 2))], ["a", "b"], sel
    )
    assert [s.shape for s in seqs] == [(3, 2), (5, 2)]


# --- train_fold ---------------------------------------------------------------------------


def write_data(tmp_path, n=90, n_test=30, seed=0, y=None):
    """Three separable classes; every clip's embedding is unique, so a row can be traced by value."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3 if y is None else y
    X = rng.normal(size=(n, 6)).astype(np.float32)
    X[:, 0] += 3 * (np.arange(n) % 3)
    folds = rng.permutation(np.arange(n) % 3)
    ids = np.array([f"c{i:03d}" for i in range(n)])
    save_npz(tmp_path / "emb/train0.npz", ids=ids, X=X)
    X_test = rng.normal(size=(n_test, 6)).astype(np.float32)
    X_test[:, 0] += 3 * (np.arange(n_test) % 3)
    save_npz(tmp_path / "emb/test0.npz", ids=np.array([f"t{i:02d}" for i in range(n_test)]), X=X_test)
    save_npz(tmp_path / "targets.npz", ids=ids, y=y, fold=folds)
    return X, X_test, y, folds


def run(tmp_path, fold, name="p", task=CLASSES, head=None, pseudo_labels=ON, mode="folds", targets="targets.npz"):
    return train_fold(
        train_shards=[tmp_path / "emb/train0.npz"],
        test_shards=[tmp_path / "emb/test0.npz"],
        targets_path=tmp_path / targets,
        task=task,
        fold=fold,
        head_params=head or {"type": "linear", "C": 1.0},
        seed=0,
        model_out=tmp_path / f"models/{name}.joblib",
        preds_out=tmp_path / f"preds/{name}.npz",
        pseudo_labels=pseudo_labels,
        test_predictions=mode,
    )


def spy_fits(monkeypatch, cls=LinearHead):
    calls = []
    fit = cls.fit

    def spy(self, X, y, groups=None, sample_weight=None):
        calls.append({"X": np.asarray(X).copy(), "y": np.asarray(y).copy(), "w": sample_weight})
        return fit(self, X, y, sample_weight=sample_weight)

    monkeypatch.setattr(cls, "fit", spy)
    return calls


def test_round_two_trains_on_the_fold_training_rows_plus_the_confident_test_rows(tmp_path, monkeypatch):
    X, X_test, y, folds = write_data(tmp_path)
    calls = spy_fits(monkeypatch)
    info = run(tmp_path, fold=1)
    teacher, student = calls
    train = folds != 1
    np.testing.assert_array_equal(teacher["X"], X[train])
    part = load_npz(tmp_path / "preds/p.npz")
    P1 = part["test__main"]
    confident = np.flatnonzero(P1.max(axis=1) >= 0.8)
    assert 0 < len(confident) < len(X_test)  # some rows left out, or the rule tests nothing here
    # the student: exactly the fold's training rows, then the confident test rows with the teacher's argmax
    np.testing.assert_array_equal(student["X"], np.concatenate([X[train], X_test[confident]]))
    np.testing.assert_array_equal(student["y"], np.concatenate([y[train], P1[confident].argmax(axis=1)]))
    np.testing.assert_allclose(student["w"][: train.sum()], 1.0)
    np.testing.assert_allclose(student["w"][train.sum() :], np.clip(P1[confident].max(axis=1), 0.5, 1), rtol=1e-5)
    assert not any((row == X[folds == 1]).all(axis=1).any() for row in student["X"])  # no validation row
    # both rounds are written, as variants, for the validation rows and the test set
    assert {"val__main", "test__main", "val__main+pl", "test__main+pl"} <= set(part)
    assert part["val__main+pl"].shape == part["val__main"].shape == ((folds == 1).sum(), 3)
    assert not np.allclose(part["test__main+pl"], part["test__main"])
    meta = read_json(tmp_path / "preds/p.meta.json")
    assert meta["variants"] == ["main", "main+pl"] and meta["pseudo_labels"]["n_pseudo"] == len(confident)
    assert info["pseudo_labels"]["n_test"] == len(X_test)
    model = joblib.load(tmp_path / "models/p.joblib")
    assert set(model) == {"teacher", "student"}


def test_the_validation_fold_labels_change_nothing_in_either_round(tmp_path):
    """A leak of the held-out fold's targets into round two (or its pseudo-labels) would move its predictions."""
    X, X_test, y, folds = write_data(tmp_path)
    save_npz(
        tmp_path / "shuffled.npz",
        ids=load_npz(tmp_path / "targets.npz")["ids"],
        fold=folds,
        y=np.where(folds == 2, (y + 1) % 3, y),
    )  # fold 2's labels all wrong
    run(tmp_path, fold=2, name="a")
    run(tmp_path, fold=2, name="b", targets="shuffled.npz")
    a, b = load_npz(tmp_path / "preds/a.npz"), load_npz(tmp_path / "preds/b.npz")
    for key in ("val__main", "test__main", "val__main+pl", "test__main+pl"):
        np.testing.assert_array_equal(a[key], b[key])
    # the check can see a leak: with fold 2 among the training rows the wrong labels move round two
    run(tmp_path, fold=0, name="c")
    run(tmp_path, fold=0, name="d", targets="shuffled.npz")
    c, d = load_npz(tmp_path / "preds/c.npz"), load_npz(tmp_path / "preds/d.npz")
    assert not np.allclose(c["val__main+pl"], d["val__main+pl"])


def test_pseudo_rows_come_from_the_teacher_not_from_any_test_label(tmp_path, monkeypatch):
    """The first ten test clips sound like the next class over from their true one (a truth written
    nowhere the pipeline reads): their pseudo-labels follow the teacher, not the truth."""
    X, X_test, y, folds = write_data(tmp_path)
    truth = np.arange(len(X_test)) % 3
    X_test[:10, 0] += 3 * (((truth[:10] + 1) % 3) - truth[:10])
    save_npz(tmp_path / "emb/test0.npz", ids=load_npz(tmp_path / "emb/test0.npz")["ids"], X=X_test)
    calls = spy_fits(monkeypatch)
    run(tmp_path, fold=0)
    P1 = load_npz(tmp_path / "preds/p.npz")["test__main"]
    confident = np.flatnonzero(P1.max(axis=1) >= 0.8)
    pseudo_y = calls[1]["y"][(folds != 0).sum() :]
    np.testing.assert_array_equal(pseudo_y, P1[confident].argmax(axis=1))
    flipped = confident[confident < 10]
    assert len(flipped) and (pseudo_y[: len(flipped)] == (truth[flipped] + 1) % 3).all()


def test_refit_runs_round_two_on_every_training_row(tmp_path, monkeypatch):
    X, X_test, y, folds = write_data(tmp_path)
    calls = spy_fits(monkeypatch)
    info = run(tmp_path, fold=None, name="refit")
    assert len(calls) == 2 and len(calls[1]["X"]) == len(X) + info["pseudo_labels"]["n_pseudo"]
    np.testing.assert_array_equal(calls[1]["X"][: len(X)], X)
    part = load_npz(tmp_path / "preds/refit.npz")
    assert "test__main+pl" in part and not any(k.startswith("val__") for k in part)


def test_disabled_or_absent_block_writes_round_one_only_and_same_bytes(tmp_path):
    write_data(tmp_path)
    run(tmp_path, fold=0, name="off", pseudo_labels={"enabled": False})
    run(tmp_path, fold=0, name="on")
    off, on = load_npz(tmp_path / "preds/off.npz"), load_npz(tmp_path / "preds/on.npz")
    assert not any("+pl" in k for k in off)
    np.testing.assert_array_equal(off["val__main"], on["val__main"])  # round one is unchanged by round two
    np.testing.assert_array_equal(off["test__main"], on["test__main"])
    assert "pseudo_labels" not in read_json(tmp_path / "preds/off.meta.json")


def test_round_two_is_deterministic_for_a_seed(tmp_path):
    write_data(tmp_path)
    head = {"type": "lgbm", "params": {"n_estimators": 30}}
    run(tmp_path, fold=1, name="x", head=head)
    run(tmp_path, fold=1, name="y", head=head)
    x, y = load_npz(tmp_path / "preds/x.npz"), load_npz(tmp_path / "preds/y.npz")
    assert set(x) == set(y) and all(np.array_equal(x[k], y[k]) for k in x)


def test_collect_scores_both_rounds_on_the_training_folds_and_auto_nests_round_two(tmp_path):
    X, X_test, y, folds = write_data(tmp_path)
    paths = []
    for k in range(3):
        run(tmp_path, fold=k, name=f"fold{k}", mode="auto")
        paths.append(tmp_path / f"preds/fold{k}.npz")
    part = load_npz(paths[0])
    assert part["nested__main+pl"].shape == part["val__main+pl"].shape
    run(tmp_path, fold=None, name="refit")
    scores = collect(
        paths,
        tmp_path / "targets.npz",
        CLASSES,
        tmp_path / "oof.npz",
        tmp_path / "test.npz",
        tmp_path / "scores.json",
        refit_path=tmp_path / "preds/refit.npz",
        test_predictions="auto",
    )
    assert set(scores["variants"]) == {"main", "main+pl"}
    assert set(scores["test_predictions"]["nested"]) == {"main", "main+pl"}
    oof = load_npz(tmp_path / "oof.npz")
    assert np.isfinite(oof["P__main+pl"]).all() and len(oof["P__main+pl"]) == len(y)


def test_knn_without_sample_weight_trains_on_pseudo_rows_unweighted(tmp_path):
    write_data(tmp_path)
    info = run(tmp_path, fold=0, head={"type": "knn", "k": 5})
    part = load_npz(tmp_path / "preds/p.npz")
    assert info["pseudo_labels"]["n_pseudo"] > 0 and "val__main+pl" in part


# --- sample weights in the sklearn heads --------------------------------------------------


@pytest.mark.parametrize("task", [CLASSES, TAGS, RATING], ids=lambda t: t.kind)
def test_linear_head_weights_rows(task):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 4))
    if task.kind == "classification":
        y = np.arange(60) % 3
    elif task.kind == "multilabel":
        y = (rng.random((60, 3)) < 0.4).astype(np.float32)
    else:
        y = X[:, 0] + rng.normal(size=60)
    w = np.where(np.arange(60) < 20, 1.0, 0.5)
    for C in (1.0, "auto"):
        plain = LinearHead(task, C=C, alpha=1.0).fit(X, y).predict(X)["main"]
        ones = LinearHead(task, C=C, alpha=1.0).fit(X, y, sample_weight=np.ones(60)).predict(X)["main"]
        weighted = LinearHead(task, C=C, alpha=1.0).fit(X, y, sample_weight=w).predict(X)["main"]
        np.testing.assert_allclose(ones, plain, atol=1e-4)
        assert not np.allclose(weighted, plain, atol=1e-4)


def test_lgbm_head_weights_rows():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(80, 4)), np.arange(80) % 3
    head = lambda: LGBMHead(CLASSES, params={"n_estimators": 20})  # noqa: E731
    w = np.where(y == 0, 1.0, 0.5)
    assert not np.allclose(head().fit(X, y, sample_weight=w).predict(X)["main"], head().fit(X, y).predict(X)["main"])


def test_no_confident_row_reuses_round_one_instead_of_refitting_it(tmp_path, monkeypatch):
    write_data(tmp_path)
    calls = spy_fits(monkeypatch)
    info = run(tmp_path, fold=0, pseudo_labels={"enabled": True, "min_confidence": 1.0})
    part = load_npz(tmp_path / "preds/p.npz")
    assert info["pseudo_labels"]["n_pseudo"] == 0 and len(calls) == 1
    np.testing.assert_array_equal(part["val__main+pl"], part["val__main"])  # every fold still has the variant
    np.testing.assert_array_equal(part["test__main+pl"], part["test__main"])


@pytest.mark.parametrize(
    ("task", "head", "chosen"),
    [
        (RATING, {"type": "linear"}, lambda m: {"alpha": [float(m.chosen_alpha[0])]}),
        (CLASSES, {"type": "linear"}, lambda m: {"C": m.chosen_C}),
        (CLASSES, {"type": "lgbm", "n_trials": 2, "inner_folds": 2, "params": {"n_estimators": 20}}, None),
    ],
)
def test_the_student_keeps_the_hyperparameters_the_teacher_chose_on_real_rows(tmp_path, task, head, chosen):
    """An inner CV over the student's rows would score the pseudo rows, which agree with the teacher
    by construction, and pick less regularisation (ridge alpha fell from 31.6 to 1 on the demo)."""
    X, X_test, y, _ = write_data(tmp_path)
    if task is RATING:
        y = (X[:, 0] + np.random.default_rng(1).normal(0, 2, len(X))).astype(np.float32)[:, None]
        save_npz(tmp_path / "targets.npz", **{**load_npz(tmp_path / "targets.npz"), "y": y})
    run(tmp_path, 0, task=task, head=head, pseudo_labels={**ON, "min_confidence": 0.6})
    model = joblib.load(tmp_path / "models/p.joblib")
    teacher, student = model["teacher"], model["student"]
    assert student is not teacher, "some test rows must be confident for a student to be trained"
    frozen = teacher.student_options()
    if chosen is not None:
        assert frozen == chosen(teacher)
    else:
        assert frozen["n_trials"] == 0 and set(teacher.best_params) <= set(frozen["params"])
        assert student.best_params == {}, "the student runs no search of its own"
    for key, value in frozen.items():
        assert student.params[key] == value
