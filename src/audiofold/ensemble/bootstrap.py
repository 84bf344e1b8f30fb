"""Paired bootstrap of the task's metrics: how sure is "a scores better than b" on these rows.

A resample with replacement is a vector of row multiplicities, so each metric is computed from
per-row statistics weighted by it (``weighted_scorer``) instead of calling the metric on copied
rows: 1000 resamples of 4,970 clips x 80 labels take ~6 s instead of ~270 s
(benchmarks/results/blend_speed_bootstrap.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import sparse

from ..errors import DataError
from ..metrics import GREATER_IS_BETTER, METRICS, as_2d, lwlrap_cells, metrics_for, normalize_probabilities
from ..tasks import TaskSpec

WeightedScorer = Callable[[np.ndarray], np.ndarray]

# Resamples scored per matrix product: bounds the (chunk, n) weight matrix to ~16 MB at 20,000 rows.
_CHUNK = 100


def _weighted_mean(values: np.ndarray) -> WeightedScorer:
    """Mean of per-row values (n,) or (n, T) under row weights W (R, n): (R,) or (R, T)."""
    return lambda W: (W @ values) / W.sum(axis=1).reshape(-1, *([1] * (values.ndim - 1)))


def _constant_where_drawn(values: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """Per resample (row of ``drawn``): are the drawn rows' values all equal?"""
    masked = np.where(drawn, values, np.nan)
    return np.nanmax(masked, axis=1) == np.nanmin(masked, axis=1)


def _pearson(y: np.ndarray, P: np.ndarray) -> WeightedScorer:
    # Centred on the full-data means so the sums-of-squares formula keeps its precision.
    y, P = as_2d(y), as_2d(P)
    yc, pc = y - y.mean(axis=0), P - P.mean(axis=0)

    def score(W: np.ndarray) -> np.ndarray:
        n = W.sum(axis=1, keepdims=True)
        mean_y, mean_p = (W @ yc) / n, (W @ pc) / n
        cov = (W @ (yc * pc)) / n - mean_y * mean_p
        var_y = (W @ yc**2) / n - mean_y**2
        var_p = (W @ pc**2) / n - mean_p**2
        drawn = W > 0
        with np.errstate(all="ignore"):
            r = cov / np.sqrt(var_y * var_p)
        r = np.where(np.isfinite(r), r, 0.0)
        for t in range(y.shape[1]):  # constancy judged on the drawn values, as metrics.pearson does
            constant_y, constant_p = (_constant_where_drawn(values[:, t], drawn) for values in (y, P))
            r[:, t] = np.where(constant_p, 0.0, r[:, t])
            r[:, t] = np.where(constant_y | (n[:, 0] < 2), np.nan, r[:, t])
        defined = np.isfinite(r)
        with np.errstate(invalid="ignore"):  # 0/0 where r is defined for no target: NaN, as metrics.pearson
            return np.where(defined, r, 0.0).sum(axis=1) / defined.sum(axis=1)

    return score


def _macro_f1(y: np.ndarray, P: np.ndarray) -> WeightedScorer:
    # Per-row one-hot hits, false alarms and misses, sparse: one non-zero per row each at most.
    n, n_classes = P.shape

    def one_hot(labels: np.ndarray) -> sparse.csr_matrix:
        return sparse.csr_matrix((np.ones(n), (np.arange(n), labels)), shape=(n, n_classes))

    truth, guess = one_hot(np.asarray(y, dtype=np.int64)), one_hot(np.argmax(P, axis=1))
    hit = truth.multiply(guess).tocsr()
    hits_t, false_alarms_t, misses_t = hit.T.tocsr(), (guess - hit).T.tocsr(), (truth - hit).T.tocsr()

    def score(W: np.ndarray) -> np.ndarray:
        hits, false_alarms, misses = ((m @ W.T).T for m in (hits_t, false_alarms_t, misses_t))
        denominator = 2 * hits + false_alarms + misses
        present = denominator > 0  # sklearn averages over classes seen in y or predicted
        f1 = np.divide(2 * hits, denominator, out=np.zeros_like(denominator), where=present)
        return f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)

    return score


def _lwlrap(y: np.ndarray, P: np.ndarray) -> WeightedScorer:
    # LWLRAP is the mean over positive cells of a precision that depends on the cell's row only:
    # per row, the sum of its cells' precisions and its positive count.
    rows, _, precision = lwlrap_cells(y, P)
    precision_sum = np.bincount(rows, weights=precision, minlength=len(P))
    count = np.bincount(rows, minlength=len(P)).astype(np.float64)

    def score(W: np.ndarray) -> np.ndarray:
        total = W @ count
        return np.divide(W @ precision_sum, total, out=np.zeros_like(total), where=total > 0)

    return score


def _mean_average_precision(y: np.ndarray, P: np.ndarray) -> WeightedScorer:
    # Per class, sklearn's step AP: each positive's weight x the precision at the end of its tie
    # group (scores sorted descending), over the class's positive weight. Only the positive cells
    # need a precision, so per resample one cumulative sum of the weights per class is the only
    # full-size pass; the positives' true-positive counts come from a cumulative sum over them alone.
    positive = np.asarray(y) > 0.5
    P = np.asarray(P, dtype=np.float64)
    n, n_classes = P.shape
    order = np.argsort(-P, axis=0, kind="stable").T  # (C, n): rows by descending score, per class
    sorted_scores = np.take_along_axis(P.T, order, axis=1)
    ends_group = np.ones((n_classes, n), dtype=bool)
    ends_group[:, :-1] = sorted_scores[:, :-1] != sorted_scores[:, 1:]
    group_end = np.minimum.accumulate(np.where(ends_group, np.arange(n), n)[:, ::-1], axis=1)[:, ::-1]
    cls, rank = np.nonzero(np.take_along_axis(positive.T, order, axis=1))  # positives, class by class
    positive_row = order[cls, rank]
    end = group_end[cls, rank]
    drawn_index = cls * n + end  # where each positive's group ends in the flattened (C, n) cumsum
    # the last positive of each positive's (class, tie group): the true positives counted there
    boundary = np.ones(len(cls), dtype=bool)
    boundary[:-1] = (cls[:-1] != cls[1:]) | (end[:-1] != end[1:])
    last_of_group = np.minimum.accumulate(np.where(boundary, np.arange(len(cls)), len(cls))[::-1])[::-1]
    class_first = np.searchsorted(cls, cls)  # index of each class's first positive

    def score_one(w: np.ndarray) -> float:
        drawn = np.cumsum(w[order], axis=1).ravel()
        w_positive = w[positive_row]
        running = np.cumsum(w_positive)
        before_class = running[class_first] - w_positive[class_first]
        true_positive = running[last_of_group] - before_class
        precision = np.divide(true_positive, drawn[drawn_index], out=np.zeros(len(cls)), where=drawn[drawn_index] > 0)
        total = np.bincount(cls, weights=w_positive, minlength=n_classes)
        has_positive = total > 0
        if not has_positive.any():
            return 0.0
        ap = np.bincount(cls, weights=w_positive * precision, minlength=n_classes)
        return float(np.mean(ap[has_positive] / total[has_positive]))

    return lambda W: np.array([score_one(w) for w in W])


def weighted_scorer(name: str, y: np.ndarray, P: np.ndarray, task: TaskSpec) -> WeightedScorer:
    """``METRICS[name]`` of rows repeated by weight: the returned function maps row multiplicities
    W (R, n) to R scores, ``scorer(W)[r] == METRICS[name](y[rows], P[rows], task)`` with
    ``rows = np.repeat(np.arange(n), W[r])`` (up to float rounding)."""
    if name in ("rmse", "mae"):
        error = (as_2d(y) - as_2d(P)) ** 2 if name == "rmse" else np.abs(as_2d(y) - as_2d(P))
        mean = _weighted_mean(error)
        return (lambda W: np.sqrt(mean(W)).mean(axis=1)) if name == "rmse" else (lambda W: mean(W).mean(axis=1))
    if name == "pearson":
        return _pearson(y, P)
    if name == "accuracy":
        return _weighted_mean((np.argmax(P, axis=1) == np.asarray(y)).astype(np.float64))
    if name == "log_loss":
        labels = np.asarray(y, dtype=np.int64)
        return _weighted_mean(-np.log(normalize_probabilities(P)[np.arange(len(labels)), labels]))
    if name == "macro_f1":
        return _macro_f1(y, P)
    if name == "lwlrap":
        return _lwlrap(y, P)
    if name == "map":
        return _mean_average_precision(y, P)
    raise DataError(f"metric {name!r} has no weighted form; expected one of {', '.join(METRICS)}.")


def paired_bootstrap(
    y: np.ndarray,
    P_a: np.ndarray,
    P_b: np.ndarray,
    task: TaskSpec,
    *,
    groups: np.ndarray | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """How sure is "a scores better than b" on these rows: a paired bootstrap of every metric of the kind.

    Each resample draws the rows with replacement, or whole groups where ``groups`` is given (rows
    of one speaker or one duplicate set are not independent, and resampling them one by one would
    give too narrow an interval), and scores a and b on the same draw. Returns unit (rows or
    groups), n_units, n_resamples, seed and per metric: difference (a - b on all rows), ci_low and
    ci_high (the 2.5 and 97.5 percentiles of the resampled differences), a_at_least_as_good (share
    of resamples where a is no worse than b, by the metric's direction) and, where a draw could not
    be scored (e.g. a Pearson r of constant targets), n_unscored.
    """
    y, P_a, P_b = np.asarray(y), np.asarray(P_a), np.asarray(P_b)
    if not (len(y) == len(P_a) == len(P_b)):
        raise DataError(f"paired bootstrap: {len(y)} targets but {len(P_a)} and {len(P_b)} prediction rows.")
    if n_resamples < 1:
        raise DataError(f"paired bootstrap: n_resamples must be >= 1, got {n_resamples}.")
    if groups is None:
        unit_of_row = np.arange(len(y))
    else:
        _, unit_of_row = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    n_units = int(unit_of_row.max()) + 1 if len(y) else 0
    rng = np.random.default_rng(seed)
    names = metrics_for(task.kind)
    scorers = {name: (weighted_scorer(name, y, P_a, task), weighted_scorer(name, y, P_b, task)) for name in names}
    diffs = {name: np.empty(n_resamples) for name in names}
    for start in range(0, n_resamples, _CHUNK):
        # drawn chunk by chunk: all the resamples' counts at once would be n_resamples x n_units
        unit_counts = np.stack(
            [
                np.bincount(rng.integers(0, n_units, n_units), minlength=n_units)
                for _ in range(min(_CHUNK, n_resamples - start))
            ]
        )
        W = unit_counts[:, unit_of_row].astype(np.float64)
        for name, (score_a, score_b) in scorers.items():
            diffs[name][start : start + len(W)] = score_a(W) - score_b(W)
    out = {"unit": "rows" if groups is None else "groups", "n_units": n_units, "n_resamples": int(n_resamples)}
    out |= {"seed": int(seed), "metrics": {}}
    everything = np.ones((1, len(y)))  # every row once: the difference on the rows as they are
    for name in names:
        sign = 1.0 if GREATER_IS_BETTER[name] else -1.0
        d = diffs[name][np.isfinite(diffs[name])]
        score_a, score_b = scorers[name]
        entry = {"difference": float(score_a(everything)[0] - score_b(everything)[0])}
        if len(d):
            low, high = np.percentile(d, [2.5, 97.5])
            entry |= {"ci_low": float(low), "ci_high": float(high), "a_at_least_as_good": float(np.mean(sign * d >= 0))}
        if len(d) < n_resamples:
            entry["n_unscored"] = int(n_resamples - len(d))
        out["metrics"][name] = entry
    return out
