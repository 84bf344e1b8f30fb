"""Post-processing decisions shared by the blend and the submission: ratings clipped and rounded to
the scale, and the score thresholds that turn multilabel scores into labels.

Each decision is made on out-of-fold rows (``decide_rounding``, ``decide_label_thresholds``) and then
applied to other rows; the blend step records it and the nested blend re-makes it per outer fold.
"""

from __future__ import annotations

import numpy as np

from . import metrics
from .errors import ConfigError
from .tasks import TaskSpec

# Value tolerance when checking that ratings lie on the scale grid (CSV round trips lose bits).
GRID_TOLERANCE = 1e-6
ROUND_MODES = ("auto", "always", "never")


def scale_bounds(task: TaskSpec) -> tuple[float | None, float | None, float | None]:
    scale = task.scale or {}
    return scale.get("min"), scale.get("max"), scale.get("step")


def finalize_predictions(P: np.ndarray, task: TaskSpec, round_to_step: bool = True) -> np.ndarray:
    """Predictions made valid for the task: ratings clipped to the scale (and, with ``round_to_step``,
    on its grid), scores in [0, 1].

    The rating grid is ``min + k * step`` (anchored at 0 when min is unset); values are rounded
    to the nearest grid point inside [min, max].
    """
    P = np.asarray(P, dtype=np.float64)
    if task.kind == "classification":
        return P.copy()
    if task.kind == "multilabel":
        return np.clip(P, 0.0, 1.0)
    low, high, step = scale_bounds(task)
    low_bound = -np.inf if low is None else low
    high_bound = np.inf if high is None else high
    if not step or not round_to_step:
        return np.clip(P, low_bound, high_bound)
    origin = 0.0 if low is None else low
    # clip in grid units, so a max that is not itself on the grid cannot pull values off it
    k = np.round((P - origin) / step)
    k = np.clip(k, (low_bound - origin) / step, np.floor((high_bound - origin) / step + GRID_TOLERANCE))
    # drop float noise such as 1.3000000000000003 so the CSV shows grid values
    return np.clip(np.round(origin + k * step, 10), low_bound, high_bound)


def check_round_mode(mode: str) -> None:
    """ConfigError naming ``submission.round`` unless ``mode`` is one of ``ROUND_MODES``."""
    if mode not in ROUND_MODES:
        raise ConfigError(f"submission.round: expected one of {', '.join(ROUND_MODES)}, got {mode!r}.")


def decide_rounding(y: np.ndarray, P: np.ndarray, task: TaskSpec, mode: str) -> dict:
    """Whether ratings are rounded to the scale step, decided on OOF predictions ``P`` of ``y``.

    ``auto`` rounds only where the primary metric (RMSE) of the rounded, clipped OOF predictions
    is not worse than of the clipped ones: rounding a blend that hedges between two grid points
    costs error (the demo: 0.563 -> 0.582). ``always`` / ``never`` force it. Kinds without a rating
    step never round. Returns mode, applied, and where a step exists criterion, rounded, unrounded.
    """
    check_round_mode(mode)
    step = scale_bounds(task)[2] if task.is_regression else None
    if not step:
        return {"mode": mode, "applied": False, "reason": "no rating step to round to"}
    criterion, greater = metrics.primary(task.kind)
    score = metrics.METRICS[criterion]
    rounded = score(y, finalize_predictions(P, task, round_to_step=True), task)
    unrounded = score(y, finalize_predictions(P, task, round_to_step=False), task)
    not_worse = rounded >= unrounded if greater else rounded <= unrounded
    applied = mode == "always" or (mode == "auto" and bool(not_worse))
    return {
        "mode": mode,
        "applied": applied,
        "step": float(step),
        "criterion": criterion,
        "rounded": float(rounded),
        "unrounded": float(unrounded),
    }


def label_mask(scores: np.ndarray, threshold: float | np.ndarray) -> np.ndarray:
    """Labels a label-string submission writes: scores >= threshold (one, or one per class), and
    each row's top label."""
    mask = scores >= np.asarray(threshold, dtype=np.float64)
    mask[np.arange(len(scores)), np.argmax(scores, axis=1)] = True
    return mask


def samples_f1(mask: np.ndarray, Y: np.ndarray) -> float:
    """Sample-averaged F1 of written labels ``mask`` against targets Y (sklearn's ``average="samples"``;
    ``label_mask`` writes at least one label per row, so no row divides by zero)."""
    Y = np.asarray(Y) > 0.5
    return float(np.mean(2 * (mask & Y).sum(1) / np.maximum(mask.sum(1) + Y.sum(1), 1)))


def tune_label_quantile(P_oof: np.ndarray, Y: np.ndarray, levels: int = 201) -> float:
    """The score quantile whose threshold gives the best sample-averaged F1 of label strings on the OOF.

    Blended multilabel scores are ranks, not probabilities, so a fixed 0.5 would write half of all
    cells as labels; a quantile carries over to the test scores (same scale, same label rate).
    """
    best_q, best_f1 = 1.0, -1.0
    for q in np.linspace(0.0, 1.0, levels):
        f1 = samples_f1(label_mask(P_oof, float(np.quantile(P_oof, q))), Y)
        if f1 > best_f1 + 1e-12:
            best_q, best_f1 = float(q), f1
    return best_q


def tune_class_quantiles(
    P_oof: np.ndarray, Y: np.ndarray, start: float, *, min_positives: int, levels: int = 201, sweeps: int = 2
) -> np.ndarray:
    """Per class, the score quantile (of the whole score matrix, like ``tune_label_quantile``'s) of its
    threshold: coordinate ascent on the sample-averaged F1 of the label strings, from the global
    quantile ``start``, one class at a time with the others fixed, ``sweeps`` passes.

    A class moves off its current level only for a strictly better F1, to the middle of its best
    levels (a plateau's middle, not its edge). Classes with fewer than ``min_positives`` positives
    keep ``start``: a threshold tuned on a handful of positives is noise. Cost per class and pass:
    levels x rows (only the class's column of the written labels changes).
    """
    Y = np.asarray(Y) > 0.5
    P_oof = np.asarray(P_oof, dtype=np.float64)
    grid = np.linspace(0.0, 1.0, levels)
    cuts = np.quantile(P_oof, grid)
    quantiles = np.full(P_oof.shape[1], float(start))
    top = np.zeros_like(Y)
    top[np.arange(len(P_oof)), np.argmax(P_oof, axis=1)] = True
    mask = label_mask(P_oof, np.quantile(P_oof, quantiles))
    hits, written, truth = (mask & Y).sum(1), mask.sum(1), Y.sum(1)
    for _ in range(sweeps):
        for c in np.flatnonzero(Y.sum(0) >= max(min_positives, 1)):
            base_hits, base_written = hits - (mask[:, c] & Y[:, c]), written - mask[:, c]
            column = (P_oof[None, :, c] >= cuts[:, None]) | top[None, :, c]  # (levels, rows)
            f1 = np.mean(
                2 * (base_hits + (column & Y[None, :, c])) / np.maximum(base_written + column + truth, 1), axis=1
            )
            current = np.mean(2 * hits / np.maximum(written + truth, 1))
            if f1.max() > current + 1e-12:
                best = np.flatnonzero(f1 >= f1.max() - 1e-12)
                level = int(best[len(best) // 2])
                quantiles[c] = grid[level]
                mask[:, c] = column[level]
                hits, written = base_hits + (mask[:, c] & Y[:, c]), base_written + mask[:, c]
    return quantiles


LABEL_MODES = ("auto", True, False)


def check_label_mode(mode: bool | str) -> None:
    """ConfigError naming ``submission.per_class_threshold`` unless ``mode`` is auto, True or False."""
    if mode not in LABEL_MODES or not isinstance(mode, (bool, str)):
        raise ConfigError(f"submission.per_class_threshold: expected auto, true or false, got {mode!r}.")


def decide_label_thresholds(
    P_oof: np.ndarray, Y: np.ndarray, folds: np.ndarray, mode: bool | str, *, min_positives: int
) -> dict:
    """Label-string thresholds chosen on the OOF blend: the global quantile and, per class, their own.

    ``mode`` (``submission.per_class_threshold``): True uses the per-class quantiles, False the global
    one; ``auto`` cross-fits both over ``folds`` (chosen on the other folds' rows, applied to the
    held-out fold through that fold's own score quantiles, as the test set is) and keeps the
    per-class ones only where their F1 is better. Returns mode, applied (per-class used), quantile,
    class_quantiles, min_positives, in_sample_f1 {global, per_class} (chosen and scored on the same
    rows: optimistic) and cross_validated_f1 (where auto compared them; else empty).
    """
    check_label_mode(mode)
    P_oof = np.asarray(P_oof, dtype=np.float64)
    quantile = tune_label_quantile(P_oof, Y)
    class_quantiles = tune_class_quantiles(P_oof, Y, quantile, min_positives=min_positives)
    out = {
        "mode": mode,
        "applied": mode is True,
        "quantile": quantile,
        "class_quantiles": class_quantiles.tolist(),
        "min_positives": int(min_positives),
        "in_sample_f1": {
            "global": samples_f1(label_mask(P_oof, np.quantile(P_oof, quantile)), Y),
            "per_class": samples_f1(label_mask(P_oof, np.quantile(P_oof, class_quantiles)), Y),
        },
        "cross_validated_f1": {},
    }
    folds = np.asarray(folds)
    if mode != "auto":
        return out
    if len(np.unique(folds)) < 2:
        return {**out, "reason": "one fold: nothing to cross-fit the per-class thresholds on; global kept"}
    masks = {"global": np.zeros(P_oof.shape, bool), "per_class": np.zeros(P_oof.shape, bool)}
    for k in np.unique(folds):
        inner, outer = folds != k, folds == k
        q = tune_label_quantile(P_oof[inner], Y[inner])
        cq = tune_class_quantiles(P_oof[inner], Y[inner], q, min_positives=min_positives)
        masks["global"][outer] = label_mask(P_oof[outer], np.quantile(P_oof[outer], q))
        masks["per_class"][outer] = label_mask(P_oof[outer], np.quantile(P_oof[outer], cq))
    scores = {name: samples_f1(mask, Y) for name, mask in masks.items()}
    out.update(cross_validated_f1=scores, applied=bool(scores["per_class"] > scores["global"] + 1e-12))
    return out


def label_thresholds(P: np.ndarray, decision: dict) -> np.ndarray | float:
    """The thresholds ``decide_label_thresholds`` chose, in the score units of predictions ``P`` (the
    test block, or a held-out fold): the chosen quantiles of P's own scores."""
    P = np.asarray(P, dtype=np.float64)
    if decision.get("applied"):
        return np.quantile(P, decision["class_quantiles"])
    return float(np.quantile(P, decision["quantile"]))
