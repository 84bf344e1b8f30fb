"""Fold invariant not covered in test_folds.py: rating folds are balanced in size and label range."""

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
