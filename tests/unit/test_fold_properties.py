"""Fold invariants not covered in test_folds.py: rating folds are balanced in size and label range;
multilabel folds with groups keep groups whole and leave no fold empty."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from audiofold.folds import make_folds
from audiofold.tasks import TaskSpec


@settings(max_examples=20, deadline=None)
@given(n=st.integers(50, 200), n_folds=st.integers(2, 6), seed=st.integers(0, 99))
def test_rating_folds_spread_the_label_range_evenly(n, n_folds, seed):
    rng = np.random.default_rng(seed)
    y = (np.round(rng.beta(2, 2, size=(n, 1)) * 10) / 2).astype(np.float32)
    task = TaskSpec("regression", "id", ["y"], scale={"min": 0, "max": 5, "step": 0.5})
    folds, _ = make_folds(y, task, n_folds, seed, n_bins=5)
    sizes = np.bincount(folds, minlength=n_folds)
    assert sizes.min() > 0 and sizes.max() - sizes.min() <= 0.1 * n + 2
    means = np.array([y[folds == k].mean() for k in range(n_folds)])
    assert means.max() - means.min() < 0.6 * y.std() + 0.1, means


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(20, 150),
    n_classes=st.integers(2, 6),
    n_groups=st.integers(6, 30),
    n_folds=st.integers(2, 5),
    seed=st.integers(0, 99),
)
def test_multilabel_group_folds_keep_groups_whole_and_fill_every_fold(n, n_classes, n_groups, n_folds, seed):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, size=n).astype(str)
    if len(np.unique(groups)) < n_folds:
        return
    y = (rng.random((n, n_classes)) < rng.random(n_classes) * 0.6).astype(np.float32)
    task = TaskSpec("multilabel", "id", ["y"], classes=[str(c) for c in range(n_classes)], label_sep=",")
    folds, scheme = make_folds(y, task, n_folds, seed, groups=groups)
    assert np.bincount(folds, minlength=n_folds).min() > 0, scheme
    for g in np.unique(groups):
        assert len(set(folds[groups == g])) == 1, scheme
