import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiofold.errors import DataError
from audiofold.folds import make_folds
from audiofold.tasks import TaskSpec

REG = TaskSpec("regression", "id", ["y"], scale={"min": 0, "max": 5, "step": 0.5})
CLS = TaskSpec("classification", "id", ["y"], classes=["a", "b", "c"])
ML = TaskSpec("multilabel", "id", ["y"], classes=["a", "b", "c", "d"], label_sep=",")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(30, 120), n_folds=st.integers(2, 6), n_groups=st.integers(6, 20), seed=st.integers(0, 99))
def test_groups_never_span_folds_and_every_row_has_one_fold(n, n_folds, n_groups, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 11, size=(n, 1)).astype(np.float32) / 2
    groups = rng.integers(0, n_groups, size=n).astype(str)
    if len(np.unique(groups)) < n_folds:
        return
    folds, scheme = make_folds(y, REG, n_folds, seed, groups=groups)
    assert folds.shape == (n,) and set(folds) <= set(range(n_folds))
    for g in np.unique(groups):
        assert len(set(folds[groups == g])) == 1, scheme


@settings(max_examples=25, deadline=None)
@given(
    n_per_class=st.lists(st.integers(10, 40), min_size=2, max_size=5),
    n_folds=st.integers(2, 5),
    seed=st.integers(0, 99),
)
def test_stratified_classes_are_balanced(n_per_class, n_folds, seed):
    y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    task = TaskSpec("classification", "id", ["y"], classes=[str(c) for c in range(len(n_per_class))])
    folds, _ = make_folds(y, task, n_folds, seed)
    for c, _n in enumerate(n_per_class):
        per_fold = np.bincount(folds[y == c], minlength=n_folds)
        assert per_fold.max() - per_fold.min() <= 1


def test_multilabel_folds_are_iteratively_stratified():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 4)) < [0.5, 0.3, 0.1, 0.05]).astype(np.float32)
    folds, scheme = make_folds(y, ML, 5, seed=1)
    assert "multilabel-stratified" in scheme
    per_fold = np.stack([y[folds == k].sum(axis=0) for k in range(5)])
    assert (per_fold.max(axis=0) - per_fold.min(axis=0) <= 2).all()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_multilabel_with_groups_stays_label_stratified(seed):
    """Speakers carry fixed tags (some rare): stratifying the speakers keeps every label spread over
    the folds; the old scheme (stratify on each row's first label) piled a rare tag into 1-2 folds."""
    rng = np.random.default_rng(seed)
    n_groups, rows_per_group, n_folds = 40, 5, 4
    profile = rng.random((n_groups, 4)) < [0.9, 0.5, 0.2, 0.1]
    profile[~profile.any(axis=1), 0] = True
    groups = np.repeat([f"spk{g:02d}" for g in range(n_groups)], rows_per_group)
    y = profile[np.repeat(np.arange(n_groups), rows_per_group)].astype(np.float32)
    folds, scheme = make_folds(y, ML, n_folds, seed, groups=groups)
    assert "multilabel-stratified group" in scheme
    for g in np.unique(groups):
        assert len(set(folds[groups == g])) == 1
    per_fold = np.stack([y[folds == k].sum(axis=0) for k in range(n_folds)])
    # each label's row count differs across folds by at most one speaker's rows
    assert (per_fold.max(axis=0) - per_fold.min(axis=0) <= rows_per_group).all(), per_fold.T
    common = profile.sum(axis=0) >= n_folds  # labels with a speaker for every fold appear in every fold
    assert (per_fold[:, common] > 0).all(), per_fold.T


def test_regression_bins_stratify_and_seed_matters():
    y = np.repeat(np.arange(0, 5.5, 0.5), 10)[:, None].astype(np.float32)
    a, _ = make_folds(y, REG, 5, seed=1)
    b, _ = make_folds(y, REG, 5, seed=1)
    c, _ = make_folds(y, REG, 5, seed=2)
    assert (a == b).all() and not (a == c).all()
    means = [y[a == k].mean() for k in range(5)]
    assert max(means) - min(means) < 0.5


def test_predefined_folds_are_used_as_given():
    folds, scheme = make_folds(np.zeros((6, 1)), REG, 3, 0, predefined=np.array(["1", "2", "3", "1", "2", "3"]))
    assert folds.tolist() == [0, 1, 2, 0, 1, 2] and "predefined" in scheme


def test_too_few_rows_or_groups_is_a_clear_error():
    with pytest.raises(DataError, match="cannot fill cv.n_folds=5"):
        make_folds(np.zeros(3, dtype=int), CLS, 5, 0)
    with pytest.raises(DataError, match=r"2 groups, fewer than cv.n_folds=3.*Set cv.n_folds to at most 2"):
        make_folds(np.zeros((10, 1)), REG, 3, 0, groups=np.array(["a", "b"] * 5))
