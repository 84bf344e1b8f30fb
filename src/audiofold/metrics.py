"""Metric registry: ``METRICS[name](y, P, task) -> float``, grouped by task kind.

Shapes follow the task contract (see ``audiofold.tasks``): regression kinds score (n, T) arrays
(overall value = mean over targets), classification scores int labels against (n, C)
probabilities, multilabel scores (n, C) 0/1 targets against (n, C) scores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from scipy.stats import pearsonr
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    log_loss,
)

from .errors import DataError
from .tasks import TaskSpec

log = logging.getLogger(__name__)
_warned_constant_targets = False

MetricFn = Callable[[np.ndarray, np.ndarray, TaskSpec], float]

# Probabilities are clipped away from 0 so one confident miss gives a large, finite log loss.
PROB_EPS = 1e-7


# ---- shape helpers ------------------------------------------------------------------------
def as_2d(a: np.ndarray) -> np.ndarray:
    """float64, with a 1-D array as one column."""
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(-1, 1) if a.ndim == 1 else a


def _check_same_shape(y: np.ndarray, P: np.ndarray) -> None:
    if y.shape != P.shape:
        raise DataError(f"targets have shape {y.shape} but predictions {P.shape}; they must match row for row.")


def _check_class_shapes(y: np.ndarray, P: np.ndarray, task: TaskSpec) -> None:
    n_classes = len(task.classes or [])
    if P.ndim != 2 or P.shape != (len(y), n_classes):
        raise DataError(f"predictions have shape {P.shape}; expected ({len(y)}, {n_classes}) for {n_classes} classes.")


def normalize_probabilities(P: np.ndarray) -> np.ndarray:
    """Clip to [PROB_EPS, 1] and rescale rows to sum 1 (what log loss expects)."""
    P = np.clip(np.asarray(P, dtype=np.float64), PROB_EPS, 1.0)
    return P / P.sum(axis=1, keepdims=True)


# ---- regression ---------------------------------------------------------------------------
def rmse_per_target(y: np.ndarray, P: np.ndarray) -> np.ndarray:
    y, P = as_2d(y), as_2d(P)
    _check_same_shape(y, P)
    return np.sqrt(np.mean((y - P) ** 2, axis=0))


def mae_per_target(y: np.ndarray, P: np.ndarray) -> np.ndarray:
    y, P = as_2d(y), as_2d(P)
    _check_same_shape(y, P)
    return np.mean(np.abs(y - P), axis=0)


def pearson_per_target(y: np.ndarray, P: np.ndarray) -> np.ndarray:
    y, P = as_2d(y), as_2d(P)
    _check_same_shape(y, P)
    global _warned_constant_targets
    out = np.zeros(y.shape[1])
    for t in range(y.shape[1]):
        if len(y) < 2 or np.ptp(y[:, t]) == 0:
            # Constant targets: r is undefined whatever the model does (NaN, written as null in JSON).
            out[t] = np.nan
            if not _warned_constant_targets:
                log.warning(
                    "the targets are constant (%d row(s)): Pearson r is undefined and reported as NaN/null. "
                    "Check the label column.",
                    len(y),
                )
                _warned_constant_targets = True
            continue
        if np.ptp(P[:, t]) == 0:  # a constant prediction (the baseline) carries no correlation
            continue
        r = pearsonr(y[:, t], P[:, t]).statistic
        out[t] = float(r) if np.isfinite(r) else 0.0
    return out


def rmse(y, P, task=None) -> float:
    return float(np.mean(rmse_per_target(y, P)))


def mae(y, P, task=None) -> float:
    return float(np.mean(mae_per_target(y, P)))


def pearson(y, P, task=None) -> float:
    """Mean r over the targets where it is defined; NaN when it is defined for none."""
    values = pearson_per_target(y, P)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


# ---- classification -----------------------------------------------------------------------
def accuracy(y, P, task: TaskSpec) -> float:
    _check_class_shapes(y, P, task)
    return float(accuracy_score(y, np.argmax(P, axis=1)))


def macro_f1(y, P, task: TaskSpec) -> float:
    # Averaged over the classes seen in y or predicted (sklearn's default); classes absent from
    # both would otherwise count as F1 = 0 and drag the score down for no reason.
    _check_class_shapes(y, P, task)
    return float(f1_score(y, np.argmax(P, axis=1), average="macro", zero_division=0))


def classification_log_loss(y, P, task: TaskSpec) -> float:
    _check_class_shapes(y, P, task)
    return float(log_loss(y, normalize_probabilities(P), labels=np.arange(P.shape[1])))


# ---- multilabel ---------------------------------------------------------------------------
def lwlrap_cells(y: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, precision) of every positive cell: #positives scored >= it / #labels scored >= it
    in its row (ties count against, like sklearn's LRAP)."""
    positive = np.asarray(y) > 0.5
    P = np.asarray(P, dtype=np.float64)
    _check_same_shape(positive, P)
    # Only positive cells need a precision, and labels are usually sparse: compare each positive
    # cell with its row (n_positives x C) instead of ranking the whole matrix.
    rows, cols = np.nonzero(positive)
    at_or_above = P[rows] >= P[rows, cols][:, None]
    return rows, cols, (at_or_above & positive[rows]).sum(axis=1) / at_or_above.sum(axis=1)


def lwlrap_per_class(y: np.ndarray, P: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Label-weighted label-ranking average precision (Kaggle FSD 2019) and its per-class parts.

    For each positive (row, label): precision at the label's rank within the row (``lwlrap_cells``).
    Per class: mean over its positive rows. Overall: per-class values weighted by each class's
    share of all positives, which equals the plain mean over all positive (row, label) pairs.
    """
    n_classes = np.shape(P)[1]
    _, cols, precision = lwlrap_cells(y, P)
    per_class_count = np.bincount(cols, minlength=n_classes)
    if per_class_count.sum() == 0:
        return 0.0, np.zeros(n_classes), np.zeros(n_classes)
    per_class = np.divide(
        np.bincount(cols, weights=precision, minlength=n_classes),
        per_class_count,
        out=np.zeros(n_classes),
        where=per_class_count > 0,
    )
    weights = per_class_count / per_class_count.sum()
    return float(np.sum(per_class * weights)), per_class, weights


def lwlrap(y, P, task=None) -> float:
    """LWLRAP from its per-positive-cell form: equal to sklearn's LRAP with each row weighted by its
    positives (the tests check it, ties included), but vectorised: sklearn ranks row by row in
    Python, ~3.6 s for 5,000 clips x 80 labels, and the nested best single scores every candidate per fold."""
    return lwlrap_per_class(y, P)[0]


def mean_average_precision(y, P, task=None) -> float:
    """Macro average precision over the classes that have at least one positive."""
    positive = np.asarray(y) > 0.5
    P = np.asarray(P, dtype=np.float64)
    _check_same_shape(positive, P)
    has_positive = positive.any(axis=0)
    if not has_positive.any():
        return 0.0
    return float(average_precision_score(positive[:, has_positive], P[:, has_positive], average="macro"))


# ---- registry -----------------------------------------------------------------------------
METRICS: dict[str, MetricFn] = {
    "rmse": rmse,
    "mae": mae,
    "pearson": pearson,
    "accuracy": accuracy,
    "macro_f1": macro_f1,
    "log_loss": classification_log_loss,
    "lwlrap": lwlrap,
    "map": mean_average_precision,
}

# Direction of each metric: True where higher is better.
GREATER_IS_BETTER = {
    "rmse": False,
    "mae": False,
    "pearson": True,
    "accuracy": True,
    "macro_f1": True,
    "log_loss": False,
    "lwlrap": True,
    "map": True,
}

_BY_KIND = {
    "regression": ["rmse", "mae", "pearson"],
    "multitarget": ["rmse", "mae", "pearson"],
    "classification": ["accuracy", "macro_f1", "log_loss"],
    "multilabel": ["lwlrap", "map"],
}

_PRIMARY = {
    "regression": ("rmse", False),
    "multitarget": ("rmse", False),
    "classification": ("accuracy", True),
    "multilabel": ("lwlrap", True),
}

_PER_TARGET = {"rmse": rmse_per_target, "mae": mae_per_target, "pearson": pearson_per_target}


def _check_kind(kind: str) -> None:
    if kind not in _BY_KIND:
        raise DataError(f"task kind {kind!r} has no metrics; expected one of {', '.join(_BY_KIND)}.")


def metrics_for(kind: str) -> list[str]:
    _check_kind(kind)
    return list(_BY_KIND[kind])


def primary(kind: str) -> tuple[str, bool]:
    """(metric name, greater_is_better) used to rank models of this kind."""
    _check_kind(kind)
    return _PRIMARY[kind]


def score(y: np.ndarray, P: np.ndarray, task: TaskSpec) -> dict[str, float]:
    """All metrics of the task's kind; multitarget also gets ``name/target`` keys."""
    out = {name: METRICS[name](y, P, task) for name in metrics_for(task.kind)}
    if task.kind == "multitarget":
        for name, per_target in _PER_TARGET.items():
            for target, value in zip(task.label_columns, per_target(y, P)):
                out[f"{name}/{target}"] = float(value)
    return out


def _weighted_pearson(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    w = w / w.sum()
    dy, dp = y - w @ y, p - w @ p
    denominator = np.sqrt((w @ dy**2) * (w @ dp**2))
    return float((w @ (dy * dp)) / denominator) if denominator > 0 else float("nan")


def _weighted_per_target(name: str, y: np.ndarray, P: np.ndarray, w: np.ndarray) -> np.ndarray:
    y, P = as_2d(y), as_2d(P)
    _check_same_shape(y, P)
    if name == "pearson":
        return np.asarray([_weighted_pearson(y[:, t], P[:, t], w) for t in range(y.shape[1])])
    error = (y - P) ** 2 if name == "rmse" else np.abs(y - P)
    mean = (w @ error) / w.sum()
    return np.sqrt(mean) if name == "rmse" else mean


def _weighted_metric(name: str, y: np.ndarray, P: np.ndarray, task: TaskSpec, w: np.ndarray) -> float:
    if name in _PER_TARGET:
        values = _weighted_per_target(name, y, P, w)
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    if name == "accuracy":
        _check_class_shapes(y, P, task)
        return float(accuracy_score(y, np.argmax(P, axis=1), sample_weight=w))
    if name == "macro_f1":
        _check_class_shapes(y, P, task)
        return float(f1_score(y, np.argmax(P, axis=1), average="macro", zero_division=0, sample_weight=w))
    if name == "log_loss":
        _check_class_shapes(y, P, task)
        return float(log_loss(y, normalize_probabilities(P), labels=np.arange(P.shape[1]), sample_weight=w))
    if name == "lwlrap":  # each positive cell's precision lies within its row: weight it by the row's weight
        rows, _, precision = lwlrap_cells(y, P)
        return float(np.sum(w[rows] * precision) / np.sum(w[rows])) if len(rows) else 0.0
    if name == "map":
        positive = np.asarray(y) > 0.5
        has_positive = positive.any(axis=0)
        if not has_positive.any():
            return 0.0
        P = np.asarray(P, dtype=np.float64)
        return float(
            average_precision_score(positive[:, has_positive], P[:, has_positive], average="macro", sample_weight=w)
        )
    raise DataError(f"metric {name!r} has no weighted form.")


def weighted_score(y: np.ndarray, P: np.ndarray, task: TaskSpec, weights: np.ndarray) -> dict[str, float]:
    """``score`` with each row counted ``weights`` times (importance-weighted: rows more like the test
    set count more); equal to ``score`` for equal weights. Same keys as ``score``."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(y),) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise DataError(f"row weights must be {len(y)} finite non-negative numbers with a positive sum.")
    out = {name: _weighted_metric(name, y, P, task, w) for name in metrics_for(task.kind)}
    if task.kind == "multitarget":
        for name in _PER_TARGET:
            for target, value in zip(task.label_columns, _weighted_per_target(name, y, P, w)):
                out[f"{name}/{target}"] = float(value)
    return out


def baseline_predictions(y_train: np.ndarray, n: int, task: TaskSpec) -> np.ndarray:
    """Predictions of the trivial model (ignores the input) for ``n`` rows.

    Train mean for regression kinds, train class frequencies for classification (its argmax is
    the majority class), per-label frequencies for multilabel.
    """
    if task.kind == "classification":
        counts = np.bincount(np.asarray(y_train, dtype=np.int64), minlength=len(task.classes or []))
        row = counts / max(counts.sum(), 1)
    else:
        row = as_2d(y_train).mean(axis=0)
    return np.tile(row.astype(np.float64), (n, 1))
