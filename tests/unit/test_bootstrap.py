import numpy as np
import pytest

from audiofold import metrics
from audiofold.ensemble.bootstrap import paired_bootstrap, weighted_scorer
from audiofold.errors import DataError
from audiofold.tasks import TaskSpec

REG = TaskSpec("regression", "id", ["score"], scale={"min": 1, "max": 5, "step": 1})
MULTI = TaskSpec("multitarget", "id", ["valence", "arousal"])
CLS = TaskSpec("classification", "id", ["label"], classes=["a", "b", "c"])
ML = TaskSpec("multilabel", "id", ["labels"], classes=["a", "b", "c", "d"], label_sep=",")


def _cases(rng, n):
    """(task, y, P) per kind; scores rounded to one decimal so rankings have ties, and a
    multilabel class with few positives so some draws have none of it."""
    y_reg = rng.integers(1, 6, (n, 1)).astype(np.float64)
    y_multi = rng.normal(size=(n, 2))
    y_cls = rng.integers(0, 3, n)
    y_ml = (rng.random((n, 4)) < [0.5, 0.3, 0.2, 0.03]).astype(np.float32)
    return [
        (REG, y_reg, np.round(y_reg + rng.normal(0, 1, (n, 1)), 1)),
        (MULTI, y_multi, y_multi + rng.normal(0, 1, (n, 2))),
        (CLS, y_cls, np.round(rng.dirichlet(np.ones(3), n), 1)),
        (ML, y_ml, np.round(0.5 * y_ml + rng.random((n, 4)), 1)),
    ]


@pytest.mark.parametrize("kind_index", range(4))
def test_weighted_scorer_equals_the_metric_on_repeated_rows(kind_index):
    """Each resample scored from row weights must equal the registry metric on the copied rows."""
    rng = np.random.default_rng(kind_index)
    task, y, P = _cases(rng, 40)[kind_index]
    W = np.stack([np.bincount(rng.integers(0, 40, 40), minlength=40) for _ in range(25)] + [np.ones(40, int)])
    for name in metrics.metrics_for(task.kind):
        got = weighted_scorer(name, y, P, task)(W.astype(np.float64))
        for r, weights in enumerate(W):
            rows = np.repeat(np.arange(40), weights)
            assert got[r] == pytest.approx(metrics.METRICS[name](y[rows], P[rows], task), rel=1e-9, abs=1e-12), (
                name,
                r,
            )


def test_weighted_pearson_of_a_constant_draw_is_undefined_and_of_a_constant_prediction_zero():
    y = np.array([[1.0], [1.0], [2.0], [3.0]])
    P = np.array([[0.5], [0.5], [0.1], [0.9]])
    W = np.array([[2.0, 2.0, 0, 0], [0, 0, 2.0, 2.0], [2.0, 0, 1.0, 1.0]])
    got = weighted_scorer("pearson", y, P, REG)(W)
    assert np.isnan(got[0])  # only y == 1 drawn
    assert got[1] == pytest.approx(1.0)
    P_constant_where_drawn = np.array([[0.5], [0.3], [0.5], [0.5]])
    assert weighted_scorer("pearson", y, P_constant_where_drawn, REG)(W[[2]])[0] == 0.0


def _onehot_guesses(y, correct, n_classes=3):
    """Probabilities putting 0.8 on the true class where ``correct``, on the next class elsewhere."""
    guess = np.where(correct, y, (y + 1) % n_classes)
    P = np.full((len(y), n_classes), 0.1)
    P[np.arange(len(y)), guess] = 0.8
    return P


def test_paired_bootstrap_sees_a_clear_win_and_a_tie():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    better = _onehot_guesses(y, rng.random(300) < 0.9)
    worse = _onehot_guesses(y, rng.random(300) < 0.6)
    win = paired_bootstrap(y, better, worse, CLS, n_resamples=300, seed=1)
    acc = win["metrics"]["accuracy"]
    assert (
        win["unit"] == "rows"
        and win["n_units"] == 300
        and set(win["metrics"]) == set(metrics.metrics_for("classification"))
    )
    assert acc["difference"] == pytest.approx(metrics.accuracy(y, better, CLS) - metrics.accuracy(y, worse, CLS))
    assert 0 < acc["ci_low"] < acc["difference"] < acc["ci_high"] and acc["a_at_least_as_good"] == 1.0
    # log loss: lower is better, so "a at least as good" counts negative differences
    assert win["metrics"]["log_loss"]["ci_high"] < 0 and win["metrics"]["log_loss"]["a_at_least_as_good"] == 1.0
    assert (
        paired_bootstrap(y, worse, better, CLS, n_resamples=300, seed=1)["metrics"]["accuracy"]["a_at_least_as_good"]
        == 0.0
    )
    tie = paired_bootstrap(y, better, better.copy(), CLS, n_resamples=50)["metrics"]["accuracy"]
    assert tie["difference"] == tie["ci_low"] == tie["ci_high"] == 0.0 and tie["a_at_least_as_good"] == 1.0
    # seeded: the same seed gives the same interval, another seed another one
    again = paired_bootstrap(y, better, worse, CLS, n_resamples=300, seed=1)["metrics"]["accuracy"]
    other = paired_bootstrap(y, better, worse, CLS, n_resamples=300, seed=2)["metrics"]["accuracy"]
    assert again == acc and (other["ci_low"], other["ci_high"]) != (acc["ci_low"], acc["ci_high"])


def test_paired_bootstrap_resamples_whole_groups():
    """Ten speakers with 30 near-identical rows each: the rows are not 300 independent draws, and
    resampling speakers gives the wider interval that says so."""
    rng = np.random.default_rng(4)
    speaker = np.repeat(np.arange(10), 30)
    offset = rng.normal(0, 1, 10)[speaker]  # each speaker's rows share one error
    y = rng.normal(size=(300, 1))
    a = y + offset[:, None] + rng.normal(0, 0.05, size=(300, 1))
    b = y + rng.normal(0, 0.9, size=(300, 1))
    rows = paired_bootstrap(y, a, b, REG, n_resamples=400, seed=0)
    groups = paired_bootstrap(y, a, b, REG, groups=speaker.astype(str), n_resamples=400, seed=0)
    assert groups["unit"] == "groups" and groups["n_units"] == 10
    width = {
        name: r["metrics"]["rmse"]["ci_high"] - r["metrics"]["rmse"]["ci_low"]
        for name, r in (("rows", rows), ("groups", groups))
    }
    assert width["groups"] > 2 * width["rows"]
    assert groups["metrics"]["rmse"]["difference"] == rows["metrics"]["rmse"]["difference"]


def test_paired_bootstrap_rejects_misaligned_rows():
    y = np.zeros(5, dtype=int)
    with pytest.raises(DataError, match="5 targets but 4 and 5"):
        paired_bootstrap(y, np.ones((4, 3)) / 3, np.ones((5, 3)) / 3, CLS)
