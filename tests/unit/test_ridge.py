"""BlockwiseRidgeCV: the linear head's regression model, equal to scikit-learn's scaler + RidgeCV
pipeline, in memory bounded by a block of rows."""

import tracemalloc

import numpy as np
import pytest
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from audiofold.heads.linear import AUTO_ALPHAS
from audiofold.heads.ridge import BlockwiseRidgeCV


def _data(n, p, targets, seed):
    rng = np.random.default_rng(seed)
    # unequal scales and offsets: the standardisation matters
    X = (rng.standard_normal((n, p)) * rng.uniform(0.1, 5, p) + rng.normal(0, 3, p)).astype(np.float32)
    Y = X[:, :3].astype(np.float64) @ rng.normal(size=(3, targets)) + rng.normal(0, 2, (n, targets))
    return X, Y


@pytest.mark.parametrize("n, p, targets", [(300, 40, 1), (400, 20, 2), (60, 100, 1)])
def test_same_alpha_and_predictions_as_the_scikit_learn_pipeline(n, p, targets):
    X, Y = _data(n, p, targets, seed=n)
    reference = make_pipeline(StandardScaler(), RidgeCV(alphas=AUTO_ALPHAS, alpha_per_target=True)).fit(X, Y)
    ours = BlockwiseRidgeCV(AUTO_ALPHAS, block_rows=37).fit(X, Y)  # blocks that do not divide n
    np.testing.assert_array_equal(np.atleast_1d(reference[-1].alpha_), ours.alpha_)
    np.testing.assert_allclose(ours.predict(X), reference.predict(X).reshape(n, -1), atol=1e-4)
    assert ours.loo_mse_.shape == (len(AUTO_ALPHAS), targets)


def test_each_target_gets_its_own_alpha_and_fixed_alphas_are_used_as_given():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 30)).astype(np.float32)
    strong = X[:, 0] * 3 + rng.normal(0, 0.1, 300)  # little noise: small alpha
    weak = rng.normal(0, 1, 300)  # no signal: the largest alpha
    ours = BlockwiseRidgeCV(AUTO_ALPHAS).fit(X, np.c_[strong, weak])
    assert ours.alpha_[0] < 10 <= 1e4 <= ours.alpha_[1]

    fixed = BlockwiseRidgeCV([3.0, 300.0], fixed=True).fit(X, np.c_[strong, weak])
    assert list(fixed.alpha_) == [3.0, 300.0] and fixed.loo_mse_ is None
    for t, alpha in enumerate((3.0, 300.0)):
        reference = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(X, np.c_[strong, weak][:, t])
        np.testing.assert_allclose(fixed.predict(X)[:, t], reference.predict(X), atol=1e-4)
    with pytest.raises(ValueError, match="3 fixed alphas for 2 targets"):
        BlockwiseRidgeCV([1.0, 2.0, 3.0], fixed=True).fit(X, np.c_[strong, weak])


def test_memory_does_not_grow_with_copies_of_the_matrix():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40_000, 64)).astype(np.float32)  # 10 MB
    y = X[:, 0] + rng.normal(0, 1, len(X))
    tracemalloc.start()
    BlockwiseRidgeCV(AUTO_ALPHAS).fit(X, y)
    ours = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    make_pipeline(StandardScaler(), RidgeCV(alphas=AUTO_ALPHAS, alpha_per_target=True)).fit(X, y)
    reference = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # blocks of 4096 rows plus n x n_alphas arrays, against float64 copies of the whole matrix
    assert ours < X.nbytes < reference / 3, (ours, X.nbytes, reference)
