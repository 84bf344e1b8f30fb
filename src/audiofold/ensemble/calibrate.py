"""Post-hoc calibration of one candidate's OOF and test predictions, kept only where OOF improves.

Cross-fitted: the calibrator applied to fold k's OOF rows is fitted on the other folds' OOF
rows, so the OOF score after calibration is as honest as the one before. The test prediction
is the mean of the fold calibrators applied to the test predictions.

- regression kinds: isotonic regression per target, judged by RMSE;
- classification: temperature scaling of log-probabilities, judged by log loss;
- multilabel: a scale and a bias per class on the logits (Platt scaling per class, fitted by
  binary cross-entropy), judged by LWLRAP. One global temperature is a monotone map of every
  cell that the blend's rank averaging undoes and that leaves each row's class order, hence
  LWLRAP, unchanged; a map per class moves classes against each other within a row, which is
  what LWLRAP scores, so it is kept only where the cross-fitted OOF LWLRAP improves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_softmax, logit, softmax
from sklearn.isotonic import IsotonicRegression

from .. import metrics
from ..errors import DataError
from ..io import load_npz, save_npz, write_json
from ..tasks import TaskSpec

TEMPERATURE_BOUNDS = (0.05, 20.0)
# Per-class logit bias bounds; the scale uses 1 / TEMPERATURE_BOUNDS.
BIAS_BOUNDS = (-20.0, 20.0)


def binary_cross_entropy(y: np.ndarray, P: np.ndarray) -> float:
    """Mean binary cross-entropy over all (row, label) cells."""
    P = np.clip(np.asarray(P, dtype=np.float64), metrics.PROB_EPS, 1 - metrics.PROB_EPS)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(P) + (1 - y) * np.log1p(-P)))


# ---- calibrators: fit(P, y) -> params, apply(params, P) -> P --------------------------------
def _fit_isotonic(P: np.ndarray, y: np.ndarray) -> list[IsotonicRegression]:
    return [IsotonicRegression(out_of_bounds="clip").fit(P[:, t], y[:, t]) for t in range(P.shape[1])]


def _apply_isotonic(models: list[IsotonicRegression], P: np.ndarray) -> np.ndarray:
    return np.column_stack([m.predict(P[:, t]) for t, m in enumerate(models)])


def _log_probabilities(P: np.ndarray) -> np.ndarray:
    return np.log(metrics.normalize_probabilities(P))


def _fit_softmax_temperature(P: np.ndarray, y: np.ndarray) -> float:
    log_p = _log_probabilities(P)
    rows = np.arange(len(y))

    def nll(T: float) -> float:
        return -float(np.mean(log_softmax(log_p / T, axis=1)[rows, y]))

    return float(minimize_scalar(nll, bounds=TEMPERATURE_BOUNDS, method="bounded").x)


def _apply_softmax_temperature(T: float, P: np.ndarray) -> np.ndarray:
    return softmax(_log_probabilities(P) / T, axis=1)


def _logits(P: np.ndarray) -> np.ndarray:
    return logit(np.clip(P, metrics.PROB_EPS, 1 - metrics.PROB_EPS))


def _fit_platt_per_class(P: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class c, scale a_c > 0 and bias b_c of sigmoid(a_c * logit(P_c) + b_c) by binary cross-entropy.

    The classes are independent, so one L-BFGS-B run fits all 2C parameters with the gradient in
    closed form. A penalty worth about one pseudo-row pulls (a, b) towards (1, 0), so a class with
    no positive in the training rows gets a finite bias instead of running to the bound.
    """
    z = _logits(P)
    n, n_classes = z.shape
    penalty = 1.0 / max(n, 1)

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = theta[:n_classes], theta[n_classes:]
        s = z * a + b
        # log(1 + e^s) - y*s is the cross-entropy of sigmoid(s), without overflow
        loss = np.mean(np.logaddexp(0.0, s) - y * s, axis=0).sum() + penalty * np.sum((a - 1) ** 2 + b**2)
        residual = (expit(s) - y) / n
        grad = np.concatenate([(residual * z).sum(0) + 2 * penalty * (a - 1), residual.sum(0) + 2 * penalty * b])
        return float(loss), grad

    scale_bounds = (1.0 / TEMPERATURE_BOUNDS[1], 1.0 / TEMPERATURE_BOUNDS[0])
    result = minimize(
        loss_and_grad,
        np.concatenate([np.ones(n_classes), np.zeros(n_classes)]),
        jac=True,
        method="L-BFGS-B",
        bounds=[scale_bounds] * n_classes + [BIAS_BOUNDS] * n_classes,
    )
    return result.x[:n_classes], result.x[n_classes:]


def _apply_platt_per_class(params: tuple[np.ndarray, np.ndarray], P: np.ndarray) -> np.ndarray:
    a, b = params
    return expit(_logits(P) * a + b)


@dataclasses.dataclass(frozen=True)
class _Method:
    name: str
    criterion: str
    fit: Callable[[np.ndarray, np.ndarray], Any]
    apply: Callable[[Any, np.ndarray], np.ndarray]
    loss: Callable[[np.ndarray, np.ndarray], float]
    greater_is_better: bool = False


def _method_for(task: TaskSpec) -> _Method:
    if task.is_regression:
        return _Method("isotonic", "rmse", _fit_isotonic, _apply_isotonic, metrics.rmse)
    if task.kind == "classification":
        return _Method(
            "temperature",
            "log_loss",
            _fit_softmax_temperature,
            _apply_softmax_temperature,
            lambda y, P: metrics.classification_log_loss(y, P, task),
        )
    return _Method(
        "platt_per_class",
        "lwlrap",
        _fit_platt_per_class,
        _apply_platt_per_class,
        metrics.lwlrap,
        greater_is_better=True,
    )


def _prepare(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    if not np.all(np.isfinite(a)):
        raise DataError(f"calibration: {name} contains NaN or inf; check the head that produced it.")
    return a


def calibrate_candidate(
    oof_P: np.ndarray, y: np.ndarray, folds: np.ndarray, test_P: np.ndarray, task: TaskSpec
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Cross-fitted calibration of one candidate; returns (oof, test, decision).

    ``decision``: method, criterion, greater_is_better (of the criterion), before/after (criterion
    on OOF before and after calibration), applied (after strictly better than before),
    primary_before/primary_after (the kind's primary metric on OOF). When not applied, the inputs
    are returned unchanged.
    """
    method = _method_for(task)
    oof = _prepare(oof_P, "OOF predictions")
    test = _prepare(test_P, "test predictions")
    folds = np.asarray(folds)
    target = np.asarray(y, dtype=np.int64) if task.kind == "classification" else _prepare(y, "targets")
    if len(folds) != len(oof) or len(target) != len(oof):
        raise DataError(
            f"calibration: {len(oof)} OOF rows, {len(target)} targets and {len(folds)} fold ids; they must match."
        )
    fold_ids = np.unique(folds)
    if len(fold_ids) < 2:
        raise DataError("calibration needs at least 2 folds to cross-fit; set cv.n_folds >= 2.")

    oof_cal = np.empty_like(oof)
    test_cal = np.zeros_like(test)
    for k in fold_ids:
        held_out = folds == k
        params = method.fit(oof[~held_out], target[~held_out])
        oof_cal[held_out] = method.apply(params, oof[held_out])
        test_cal += method.apply(params, test) / len(fold_ids)

    before, after = method.loss(target, oof), method.loss(target, oof_cal)
    primary_name, _ = metrics.primary(task.kind)
    primary = metrics.METRICS[primary_name]
    applied = bool(after > before if method.greater_is_better else after < before)
    decision = {
        "method": method.name,
        "criterion": method.criterion,
        "greater_is_better": method.greater_is_better,
        "before": float(before),
        "after": float(after),
        "applied": applied,
        "primary_before": primary(target, oof, task),
        "primary_after": primary(target, oof_cal, task),
    }
    if not applied:
        return np.asarray(oof_P), np.asarray(test_P), decision
    return oof_cal, test_cal, decision


def calibrate_files(oof_path, test_path, task: TaskSpec, oof_out, test_out, decision_out, enabled: bool = True) -> dict:
    """Calibrate every output variant of one backbone x head; write the same layout plus the decisions."""
    oof, test = load_npz(oof_path), load_npz(test_path)
    decisions: dict[str, Any] = {}
    for key in [k for k in oof if k.startswith("P__")]:
        if enabled:
            oof[key], test[key], decisions[key[3:]] = calibrate_candidate(
                oof[key], oof["y"], oof["fold"], test[key], task
            )
        else:
            decisions[key[3:]] = {"method": "disabled", "applied": False}
    save_npz(oof_out, **oof)
    save_npz(test_out, **test)
    write_json(decision_out, decisions)
    return decisions
