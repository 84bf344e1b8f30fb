"""Level-2 stacker: a small linear model fitted on the candidates' OOF predictions.

Regression kinds: one ridge per target on the candidates' predictions of that target (RidgeCV,
alpha by efficient leave-one-out). Classification: one multinomial logistic regression on every
candidate's log-probabilities. Multilabel: one logistic regression per class on the candidates'
scores of that class (after the blend's rank transform). The fitted model is kept as plain
coefficients (JSON in ``weights.json``), and ``predict_stacker`` applies them with numpy, so the
file alone says what the submission is.

Features come from ``blend._transform`` (the candidates stacked to (N, n, D)); fitting is
deterministic (closed-form ridge, lbfgs). The stacker fitted on some rows scores in-sample on
them; ``blend`` cross-fits it over the folds for its OOF prediction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit, softmax
from sklearn.linear_model import LogisticRegression, RidgeCV
from threadpoolctl import threadpool_limits

from ..metrics import PROB_EPS
from ..tasks import TaskSpec

RIDGE_ALPHAS = np.logspace(-3, 4, 15)
# Fixed, mild L2 for the logistic stackers (inverse strength, sklearn's C); features are
# log-probabilities or [0, 1] ranks, so one value suits every task of this kind.
LOGISTIC_C = 1.0


def _features(stack: np.ndarray, task: TaskSpec) -> np.ndarray:
    """(N, n, D) transformed candidates -> the stacker's inputs: classification (n, N*C) log-probabilities,
    otherwise (D, n, N): per output, that output's column of every candidate."""
    if task.kind == "classification":
        logp = np.log(np.clip(stack, PROB_EPS, 1.0))
        return logp.transpose(1, 0, 2).reshape(stack.shape[1], -1)
    return stack.transpose(2, 1, 0)


def _logistic(X: np.ndarray, labels: np.ndarray) -> LogisticRegression:
    # Newton steps converge in a few iterations on these few features; lbfgs for the multinomial one
    solver = "newton-cholesky" if len(np.unique(labels)) == 2 else "lbfgs"
    return LogisticRegression(C=LOGISTIC_C, solver=solver, max_iter=2000).fit(X, labels)


def fit_stacker(stack: np.ndarray, y: np.ndarray, task: TaskSpec) -> dict[str, Any]:
    """Fit on (N, n, D) transformed candidates and targets y; returns {model, coef, intercept[, alpha]}.

    coef: regression kinds and multilabel (D, N), one row per output; classification (C, N*C),
    one row per class over every candidate's C log-probabilities (candidate-major)."""
    with threadpool_limits(1):  # problems this small only lose time to BLAS threads (cross-fitting fits many)
        return _fit(_features(stack, task), y, task)


def _fit(X: np.ndarray, y: np.ndarray, task: TaskSpec) -> dict[str, Any]:
    if task.is_regression:
        Y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        fits = [RidgeCV(alphas=RIDGE_ALPHAS).fit(X[t], Y[:, t]) for t in range(Y.shape[1])]
        return {
            "model": "ridge",
            "coef": [f.coef_.tolist() for f in fits],
            "intercept": [float(f.intercept_) for f in fits],
            "alpha": [float(f.alpha_) for f in fits],
        }
    if task.kind == "classification":
        n_classes = len(task.classes)
        labels = np.asarray(y, dtype=np.int64)
        coef, intercept = np.zeros((n_classes, X.shape[1])), np.full(n_classes, np.log(PROB_EPS))
        present = np.unique(labels)
        if len(present) == 1:  # nothing to separate: predict the one class seen
            intercept[present] = 0.0
        else:
            fit = _logistic(X, labels)
            if len(present) == 2:  # sklearn's binary form: one row, the logit of classes_[1]
                coef[present[1]], intercept[present] = fit.coef_[0], [0.0, fit.intercept_[0]]
            else:  # classes missing from these rows keep coefficient 0 and probability ~PROB_EPS
                coef[present], intercept[present] = fit.coef_, fit.intercept_
        return {"model": "logistic_multinomial", "coef": coef.tolist(), "intercept": intercept.tolist()}
    positive = np.asarray(y) > 0.5
    coef, intercept = np.zeros((X.shape[0], X.shape[2])), np.zeros(X.shape[0])
    for c in range(X.shape[0]):
        if positive[:, c].all() or not positive[:, c].any():  # one label value: its (clipped) prevalence
            p = np.clip(positive[:, c].mean(), PROB_EPS, 1 - PROB_EPS)
            intercept[c] = np.log(p / (1 - p))
            continue
        fit = _logistic(X[c], positive[:, c])
        coef[c], intercept[c] = fit.coef_[0], fit.intercept_[0]
    return {"model": "logistic_per_class", "coef": coef.tolist(), "intercept": intercept.tolist()}


def predict_stacker(stacker: dict[str, Any], stack: np.ndarray, task: TaskSpec) -> np.ndarray:
    """The fitted stacker's predictions for (N, n, D) transformed candidates: (n, D)."""
    X = _features(stack, task)
    coef, intercept = np.asarray(stacker["coef"]), np.asarray(stacker["intercept"])
    if task.kind == "classification":
        return softmax(X @ coef.T + intercept, axis=1)
    out = np.einsum("dnk,dk->nd", X, coef) + intercept
    return out if task.is_regression else expit(out)


def candidate_shares(stacker: dict[str, Any], names: list[str]) -> dict[str, float]:
    """Each candidate's share of the stacker's absolute coefficients (summing to 1): what the report
    plots as its "weight". The candidates' features share one scale per kind, so the shares compare."""
    coef = np.abs(np.asarray(stacker["coef"]))
    per_candidate = coef.reshape(coef.shape[0], len(names), -1).sum(axis=(0, 2))
    total = per_candidate.sum()
    if total == 0:
        return {name: 1.0 / len(names) for name in names}
    return {name: float(v / total) for name, v in zip(names, per_candidate)}
