"""Blend the candidates' OOF predictions into one, by one of four methods chosen on OOF.

- ``single``: no blend, the one candidate with the best primary metric (``single_weights``).
- ``grid``: the best weights on a simplex grid (``search_weights``; only the best
  ``max_candidates`` candidates enter, the grid grows as (1/step)^candidates).
- ``greedy``: forward ensemble selection with replacement (Caruana et al. 2004, as AutoGluon's
  weighted ensemble; ``greedy_weights``): add the candidate that most improves the running
  average, for a number of rounds; weights are the pick counts. Scales to any number of candidates.
- ``stack``: a linear level-2 model on the candidates (``audiofold.ensemble.stack``), cross-fitted over the
  folds for its OOF prediction, refitted on every OOF row for the test prediction.
- ``auto`` (``fit_blend``): each applicable method is cross-fitted over the folds (fitted on the
  other folds' OOF rows, applied to the held-out fold) and the best cross-validated one is fitted
  on all OOF rows, by the criterion below. ``single`` is not among them, and the choice is not
  made on accuracy: on 11 ESC-10 candidate pools, nested, letting ``auto`` also pick ``single``
  and choose on accuracy was worse in 8 and better in 1 (mean -0.006); either change alone never
  paid on average (benchmarks/results/blend_selection_esc10.md). A noisier choice costs more than it saves.

Multilabel only, ``per_class``: grid or greedy weights refined per class column
(``audiofold.ensemble.classwise``: forward selection on each column, shrunk towards the global weights);
``auto`` keeps them only where their cross-fitted score beats the global weights'. The stacker is
per class already.

Criteria: regression kinds -> RMSE (mean over targets); classification -> log loss (accuracy
ties too often to separate blends); multilabel -> lwlrap of rank-averaged scores (each
candidate's class columns become ranks scaled to [0, 1], so candidates on different score
scales mix fairly). ``single`` picks by the primary metric, ties by the criterion.
``predict_blend`` applies the same transform to held-out and test predictions.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.stats import rankdata

from .. import metrics
from ..errors import ConfigError, DataError
from ..io import load_npz, save_npz, write_json
from ..postprocess import decide_label_thresholds, decide_rounding, finalize_predictions
from ..tasks import TaskSpec
from . import classwise
from .options import METHODS, BlendOptions
from .stack import candidate_shares, fit_stacker, predict_stacker

log = logging.getLogger(__name__)

# A grid point replaces the incumbent only if better by more than this (float noise is no gain).
MIN_IMPROVEMENT = 1e-12
# What `auto` compares, in this order: it breaks ties towards the earlier (simpler) method.
AUTO_METHODS = ("grid", "greedy", "stack")


def _log_loss(y: np.ndarray, P: np.ndarray) -> float:
    """metrics.classification_log_loss's value without sklearn's per-call validation (a test keeps
    them equal): the searches evaluate the criterion thousands of times."""
    P = metrics.normalize_probabilities(P)
    return float(-np.mean(np.log(P[np.arange(len(P)), np.asarray(y, dtype=np.int64)])))


def _criterion(task: TaskSpec) -> tuple[str, bool, Callable[[np.ndarray, np.ndarray], float]]:
    """(name, greater_is_better, fn(y, P)) of the blend search for this task kind."""
    if task.is_regression:
        return "rmse", False, metrics.rmse
    if task.kind == "classification":
        return "log_loss", False, _log_loss
    return "lwlrap", True, metrics.lwlrap


def rank_matrix(P: np.ndarray) -> np.ndarray:
    """Every cell replaced by its rank among all cells, scaled to [0, 1] (ties share their average rank).

    Ranking the whole matrix, not each class column, puts candidates with different score scales
    on one footing while keeping each row's class order, which is what LWLRAP scores; per-column
    ranks reorder a row's classes and cost LWLRAP when class frequencies differ.
    """
    P = np.asarray(P, dtype=np.float64)
    if P.size < 2:
        return np.full(P.shape, 0.5)
    return ((rankdata(P, axis=None) - 1.0) / (P.size - 1)).reshape(P.shape)


def _transform(P: np.ndarray, task: TaskSpec) -> np.ndarray:
    P = np.asarray(P, dtype=np.float64)
    if task.kind == "multilabel":
        return rank_matrix(P)
    return P.reshape(len(P), -1)


def _finish(blended: np.ndarray, task: TaskSpec) -> np.ndarray:
    if task.kind == "classification":
        return blended / blended.sum(axis=1, keepdims=True)
    return blended


def _combine(weights: np.ndarray, transformed: np.ndarray, task: TaskSpec) -> np.ndarray:
    """Weighted sum of the stacked transformed candidates (N, n, C)."""
    return _finish(np.tensordot(weights, transformed, axes=1), task)


def simplex_grid(n_candidates: int, step: float) -> np.ndarray:
    """All weight vectors with entries in {0, step, .., 1} summing to 1, shape (G, n_candidates).

    The vertices (one candidate alone, in candidate order) come first, then the mixtures in
    lexicographic stars-and-bars order, so ties resolve towards single candidates.
    """
    units = round(1.0 / step)
    if units < 1 or not math.isclose(units * step, 1.0, rel_tol=1e-9):
        raise ConfigError(f"blend.step: 1/step must be a whole number (e.g. 0.1, 0.05, 0.25), got {step}.")
    points = [units * np.eye(n_candidates, dtype=np.int64)]
    for bars in itertools.combinations(range(units + n_candidates - 1), n_candidates - 1):
        counts = np.diff([-1, *bars, units + n_candidates - 1]) - 1
        if counts.max() < units:  # vertices are already listed
            points.append(counts[None, :])
    return np.concatenate(points).astype(np.float64) / units


def _check_candidates(candidates: dict[str, np.ndarray], n_rows: int | None = None) -> None:
    if not candidates:
        raise DataError("blend: no candidates; check that the heads produced OOF predictions.")
    shapes = {name: np.shape(P) for name, P in candidates.items()}
    if len(set(shapes.values())) > 1:
        raise DataError(f"blend: candidates have different shapes {shapes}; they must cover the same rows and columns.")
    shape = next(iter(shapes.values()))
    if n_rows is not None and shape[0] != n_rows:
        raise DataError(f"blend: candidates have {shape[0]} rows but there are {n_rows} targets.")
    for name, P in candidates.items():
        if not np.all(np.isfinite(P)):
            raise DataError(f"blend: candidate {name!r} contains NaN or inf.")


def _prepare(candidates: dict[str, np.ndarray], y: np.ndarray, task: TaskSpec) -> dict[str, Any]:
    """What every method starts from: the criterion, the transformed candidates, each one's score
    alone and the names ranked best single first (names break ties, so dict order never matters)."""
    _check_candidates(candidates, n_rows=len(y))
    criterion, greater_is_better, fn = _criterion(task)
    sign = 1.0 if greater_is_better else -1.0  # the methods maximise sign * score
    transformed = {name: _transform(P, task) for name, P in candidates.items()}
    single_scores = {name: float(fn(y, _combine(np.ones(1), P[None], task))) for name, P in transformed.items()}
    ranked = sorted(candidates, key=lambda name: (-sign * single_scores[name], name))
    return {
        "criterion": criterion,
        "greater_is_better": greater_is_better,
        "fn": fn,
        "sign": sign,
        "transformed": transformed,
        "single_scores": single_scores,
        "ranked": ranked,
    }


def _summary(prep: dict[str, Any]) -> dict[str, Any]:
    return {key: prep[key] for key in ("criterion", "greater_is_better", "single_scores")}


def single_weights(candidates: dict[str, np.ndarray], y: np.ndarray, task: TaskSpec) -> dict[str, Any]:
    """The one candidate with the best primary metric on these rows (ties: the criterion, then the
    name), weight 1. Returns weights, score (its criterion), criterion, greater_is_better,
    single_scores and chosen."""
    prep = _prepare(candidates, y, task)
    primary, greater = metrics.primary(task.kind)
    sign = 1.0 if greater else -1.0

    def key(name: str) -> tuple[float, float]:
        alone = _combine(np.ones(1), prep["transformed"][name][None], task)
        return sign * metrics.METRICS[primary](y, alone, task), prep["sign"] * prep["single_scores"][name]

    best = max(sorted(candidates), key=key)  # max keeps the first of equals: the earliest name
    return {
        "weights": {name: float(name == best) for name in candidates},
        "score": prep["single_scores"][best],
        **_summary(prep),
        "chosen": best,
    }


def search_weights(
    candidates: dict[str, np.ndarray],
    y: np.ndarray,
    task: TaskSpec,
    step: float = BlendOptions.step,
    max_candidates: int = BlendOptions.max_candidates,
) -> dict[str, Any]:
    """Best simplex weights for the OOF candidates.

    Returns weights (every input candidate; 0.0 for those left out), score (criterion of the
    blend), criterion, greater_is_better, single_scores (criterion of each candidate alone,
    after the same transform), n_grid (points evaluated) and searched (candidates in the grid,
    best single first). Candidates beyond ``max_candidates`` (ranked by single score) get 0.
    """
    prep = _prepare(candidates, y, task)
    if max_candidates < 1:
        raise ConfigError(f"blend.max_candidates: must be >= 1, got {max_candidates}.")
    fn, sign = prep["fn"], prep["sign"]
    searched = prep["ranked"][:max_candidates]
    stack = np.stack([prep["transformed"][name] for name in searched])

    grid = simplex_grid(len(searched), step)
    best_weights, best_value = grid[0], -np.inf
    for weights in grid:
        value = sign * fn(y, _combine(weights, stack, task))
        if value > best_value + MIN_IMPROVEMENT:
            best_weights, best_value = weights, value

    chosen = dict(zip(searched, best_weights.tolist()))
    return {
        "weights": {name: float(chosen.get(name, 0.0)) for name in candidates},
        "score": float(sign * best_value),
        **_summary(prep),
        "n_grid": int(len(grid)),
        "searched": searched,
    }


def greedy_weights(
    candidates: dict[str, np.ndarray], y: np.ndarray, task: TaskSpec, rounds: int = BlendOptions.greedy_rounds
) -> dict[str, Any]:
    """Forward ensemble selection with replacement (Caruana et al. 2004; AutoGluon's weighted ensemble).

    Each round adds the candidate whose addition gives the running average the best criterion
    (ties: the better single candidate), whether or not it improves; the weights are the pick
    counts of the best round's ensemble (the earliest, if several tie) over its size, so extra
    rounds never make the result worse. Cost: rounds x candidates criterion evaluations.
    Returns weights, score, criterion, greater_is_better, single_scores, rounds, rounds_used,
    picks (candidate names in pick order, up to rounds_used) and trajectory (score after each round).
    """
    if rounds < 1:
        raise ConfigError(f"blend.greedy_rounds: must be >= 1, got {rounds}.")
    prep = _prepare(candidates, y, task)
    fn, sign, ranked = prep["fn"], prep["sign"], prep["ranked"]
    stack = np.stack([prep["transformed"][name] for name in ranked])
    counts, total = np.zeros(len(ranked)), np.zeros_like(stack[0])
    picks, trajectory = [], []
    best_value, best_counts, best_round = -np.inf, counts, 0
    for r in range(1, rounds + 1):
        values = np.array([sign * fn(y, _finish((total + P) / r, task)) for P in stack])
        pick = int(np.flatnonzero(values >= values.max() - MIN_IMPROVEMENT)[0])
        counts[pick] += 1
        total = total + stack[pick]
        picks.append(ranked[pick])
        trajectory.append(float(sign * values[pick]))
        if values[pick] > best_value + MIN_IMPROVEMENT:
            best_value, best_counts, best_round = values[pick], counts.copy(), r
    chosen = dict(zip(ranked, (best_counts / best_round).tolist()))
    return {
        "weights": {name: float(chosen[name]) for name in candidates},
        "score": float(sign * best_value),
        **_summary(prep),
        "rounds": int(rounds),
        "rounds_used": int(best_round),
        "picks": picks[:best_round],
        "trajectory": trajectory,
    }


def stack_weights(candidates: dict[str, np.ndarray], y: np.ndarray, task: TaskSpec) -> dict[str, Any]:
    """The level-2 stacker (``audiofold.ensemble.stack``) fitted on these rows.

    Returns stacker (its coefficients and ``candidates``, the feature order), weights (each
    candidate's share of the absolute coefficients, for the report), score (in-sample: the
    stacker scored on the rows it was fitted on), criterion, greater_is_better, single_scores.
    """
    prep = _prepare(candidates, y, task)
    names = prep["ranked"]
    stack = np.stack([prep["transformed"][name] for name in names])
    stacker = {**fit_stacker(stack, y, task), "candidates": names}
    shares = candidate_shares(stacker, names)
    return {
        "weights": {name: shares[name] for name in candidates},
        "score": float(prep["fn"](y, predict_stacker(stacker, stack, task))),
        **_summary(prep),
        "stacker": stacker,
    }


def fit_method(
    method: str,
    candidates: dict[str, np.ndarray],
    y: np.ndarray,
    task: TaskSpec,
    options: BlendOptions = BlendOptions(),
    *,
    per_class: bool = False,
) -> dict[str, Any]:
    """One method fitted on these rows (``single_weights``, ``search_weights``, ``greedy_weights`` or
    ``stack_weights``, with ``options``' step, max_candidates, greedy_rounds), its result tagged with
    ``method``; ``predict_blend`` applies it. ``per_class`` (multilabel grid or greedy; the decision,
    not ``options.per_class``' mode): the weights are then refined per class (``_per_class_weights``)."""
    if method == "single":
        result = single_weights(candidates, y, task)
    elif method == "grid":
        result = search_weights(candidates, y, task, step=options.step, max_candidates=options.max_candidates)
    elif method == "greedy":
        result = greedy_weights(candidates, y, task, rounds=options.greedy_rounds)
    elif method == "stack":
        result = stack_weights(candidates, y, task)
    else:
        raise ConfigError(f"blend.method: {method!r} is not one of auto, {', '.join(METHODS)}.")
    result = {"method": method, **result}
    if per_class and task.kind == "multilabel" and method in ("grid", "greedy"):
        result.update(_per_class_weights(result, candidates, y, task, options))
    return result


def _per_class_weights(
    result: dict[str, Any],
    candidates: dict[str, np.ndarray],
    y: np.ndarray,
    task: TaskSpec,
    options: BlendOptions,
) -> dict[str, Any]:
    """``result``'s global weights refined per class (``classwise.class_weights``: ``options``'
    greedy_rounds, per_class_min_positives, per_class_shrinkage).

    Returns class_weights ({candidate: weight per class}, candidates with any weight),
    global_weights (the method's own weights), weights (each candidate's mean weight over the
    classes, what the report plots), score (in-sample) and class_share (per class, the share of
    its own column search in its weights; 0 = the global weights)."""
    names = list(candidates)
    stack = np.stack([_transform(candidates[name], task) for name in names])
    global_weights = np.array([result["weights"][name] for name in names])
    W, share = classwise.class_weights(
        stack,
        y,
        global_weights,
        rounds=options.greedy_rounds,
        min_positives=options.per_class_min_positives,
        shrinkage=options.per_class_shrinkage,
    )
    used = W.sum(axis=0) > 0
    return {
        "class_weights": {name: W[:, k].tolist() for k, name in enumerate(names) if used[k]},
        "global_weights": result["weights"],
        "weights": {name: float(w) for name, w in zip(names, W.mean(axis=0))},
        "score": float(_criterion(task)[2](y, classwise.combine(W, stack))),
        "class_share": share.tolist(),
    }


def apply_weights(weights: dict[str, float], candidates: dict[str, np.ndarray], task: TaskSpec) -> np.ndarray:
    """Blend predictions with the searched weights (same transform as the search)."""
    used = {name: w for name, w in weights.items() if w > 0}
    if not used:
        raise DataError("blend: every weight is 0; re-run the blend search.")
    missing = sorted(set(used) - set(candidates))
    if missing:
        raise DataError(f"blend: weighted candidate(s) {missing} have no predictions; available: {sorted(candidates)}.")
    _check_candidates({name: candidates[name] for name in used})
    stack = np.stack([_transform(candidates[name], task) for name in used])
    w = np.array(list(used.values()), dtype=np.float64)
    return _combine(w / w.sum(), stack, task)


def predict_blend(fitted: dict[str, Any], candidates: dict[str, np.ndarray], task: TaskSpec) -> np.ndarray:
    """The fitted blend (``fit_method`` / ``fit_blend``) applied to candidate predictions of any rows
    (the same transform as in fitting; multilabel ranks are taken over the rows given)."""
    if "class_weights" in fitted:
        names = list(fitted["class_weights"])
        missing = sorted(set(names) - set(candidates))
        if missing:
            raise DataError(
                f"blend: weighted candidate(s) {missing} have no predictions; available: {sorted(candidates)}."
            )
        _check_candidates({name: candidates[name] for name in names})
        stack = np.stack([_transform(candidates[name], task) for name in names])
        W = np.array([fitted["class_weights"][name] for name in names]).T
        if W.shape[0] != stack.shape[2]:
            raise DataError(f"blend: per-class weights cover {W.shape[0]} classes, the predictions {stack.shape[2]}.")
        return classwise.combine(W, stack)
    if fitted.get("method") != "stack":
        return apply_weights(fitted["weights"], candidates, task)
    names = fitted["stacker"]["candidates"]
    missing = sorted(set(names) - set(candidates))
    if missing:
        raise DataError(f"blend: stacked candidate(s) {missing} have no predictions; available: {sorted(candidates)}.")
    _check_candidates({name: candidates[name] for name in names})
    stack = np.stack([_transform(candidates[name], task) for name in names])
    return predict_stacker(fitted["stacker"], stack, task)


def cross_fit(
    method: str,
    candidates: dict[str, np.ndarray],
    y: np.ndarray,
    folds: np.ndarray,
    task: TaskSpec,
    options: BlendOptions = BlendOptions(),
) -> np.ndarray:
    """Cross-fitted OOF prediction of one method with global weights: for each fold, fitted on the other
    folds' rows and applied to the fold's rows (transformed over that block, as the test set is)."""
    folds = np.asarray(folds)
    first = np.asarray(next(iter(candidates.values())))
    out = np.full((len(first), first.reshape(len(first), -1).shape[1]), np.nan)
    for k in np.unique(folds):
        inner, outer = folds != k, folds == k
        fitted = fit_method(method, {n: P[inner] for n, P in candidates.items()}, y[inner], task, options)
        out[outer] = predict_blend(fitted, {n: P[outer] for n, P in candidates.items()}, task)
    return out


def _cross_fit_per_class(
    method: str,
    candidates: dict[str, np.ndarray],
    y: np.ndarray,
    folds: np.ndarray,
    task: TaskSpec,
    options: BlendOptions,
) -> tuple[np.ndarray, np.ndarray]:
    """``cross_fit`` of ``method`` with global and with per-class weights at once: per fold, the global
    weights are fitted once and refined per class (the refinement starts from them anyway)."""
    folds = np.asarray(folds)
    global_oof = np.full(np.shape(next(iter(candidates.values()))), np.nan)
    class_oof = global_oof.copy()
    for k in np.unique(folds):
        inner, outer = folds != k, folds == k
        inner_cands = {n: P[inner] for n, P in candidates.items()}
        outer_cands = {n: P[outer] for n, P in candidates.items()}
        fitted = fit_method(method, inner_cands, y[inner], task, options)
        global_oof[outer] = predict_blend(fitted, outer_cands, task)
        refined = {**fitted, **_per_class_weights(fitted, inner_cands, y[inner], task, options)}
        class_oof[outer] = predict_blend(refined, outer_cands, task)
    return global_oof, class_oof


def applicable_methods(method: str, n_candidates: int, max_candidates: int) -> list[str]:
    """The methods ``method`` stands for: itself, or for ``auto`` every method, grid only where
    every candidate fits in it (greedy covers the larger pools)."""
    if method == "auto":
        return [m for m in AUTO_METHODS if m != "grid" or n_candidates <= max_candidates]
    if method not in METHODS:
        raise ConfigError(f"blend.method: {method!r} is not one of auto, {', '.join(METHODS)}.")
    return [method]


def fit_blend(
    candidates: dict[str, np.ndarray],
    y: np.ndarray,
    folds: np.ndarray,
    task: TaskSpec,
    options: BlendOptions = BlendOptions(),
) -> tuple[dict[str, Any], np.ndarray]:
    """The whole blend step on OOF rows: choose the method (``options.method``), fit it on every row.

    ``auto`` cross-fits every applicable method over ``folds`` and keeps the best cross-validated
    criterion (``method_scores``; ties go to the earlier of grid, greedy, stack), so the choice is
    judged on rows no method was fitted on. ``stack`` is cross-fitted as well, for its OOF.
    Multilabel ``options.per_class`` (True, False or ``auto``): where grid or greedy is chosen, refine its
    weights per class; ``auto`` cross-fits the chosen method with and without and keeps per-class
    weights only where they score better.
    Returns (result, oof blend): result = the winner's ``fit_method`` result on all rows plus
    ``requested`` (the configured method) and ``method_scores`` (cross-validated criterion per
    method compared; empty for a plain grid or greedy), and for multilabel ``per_class``
    (requested, applied, scores: the cross-validated global / per_class criterion where compared);
    its ``score`` is the criterion of the returned OOF blend: in-sample for grid and greedy,
    cross-fitted for the stacker.
    """
    prep = _prepare(candidates, y, task)
    method = options.method
    methods = applicable_methods(method, len(candidates), options.max_candidates)
    n_folds = len(np.unique(folds))
    cross_fitted, method_scores = {}, {}
    if method in ("auto", "stack"):
        if n_folds < 2:
            raise DataError(
                f"blend.method {method}: cross-fitting needs OOF rows from >= 2 folds, got {n_folds}; "
                "use blend.method single, grid or greedy, or more folds."
            )
        for m in methods:
            cross_fitted[m] = cross_fit(m, candidates, y, folds, task, options)
            method_scores[m] = float(prep["fn"](y, cross_fitted[m]))
    chosen, best = methods[0], -np.inf
    for m in methods if method_scores else []:
        if prep["sign"] * method_scores[m] > best + MIN_IMPROVEMENT:
            chosen, best = m, prep["sign"] * method_scores[m]
    decision = _decide_per_class(chosen, candidates, y, folds, task, prep, options)
    result = fit_method(chosen, candidates, y, task, options, per_class=bool(decision and decision["applied"]))
    oof = cross_fitted["stack"] if chosen == "stack" else predict_blend(result, candidates, task)
    result.update(requested=method, method_scores=method_scores, score=float(prep["fn"](y, oof)))
    if decision is not None:
        result["per_class"] = {
            **decision,
            "min_positives": options.per_class_min_positives,
            "shrinkage": options.per_class_shrinkage,
        }
    return result, oof


def _decide_per_class(
    chosen: str,
    candidates: dict[str, np.ndarray],
    y: np.ndarray,
    folds: np.ndarray,
    task: TaskSpec,
    prep: dict[str, Any],
    options: BlendOptions,
) -> dict[str, Any] | None:
    """Whether the chosen method's weights are refined per class (``options.per_class``): None for
    single-label and regression kinds; otherwise requested, applied, scores (cross-validated criterion
    of the global and the per-class weights, where ``auto`` compared them) and, where not applied, the reason."""
    if task.kind != "multilabel":
        return None
    per_class = options.per_class
    decision = {"requested": per_class, "applied": False, "scores": {}}
    if per_class is False:
        return {**decision, "reason": "blend.per_class false"}
    if chosen == "stack":
        return {**decision, "reason": "the stacker is fitted per class already"}
    if chosen == "single":
        return {**decision, "reason": "one candidate alone has no weights to refine"}
    if per_class is True:
        return {**decision, "applied": True}
    n_folds = len(np.unique(folds))
    if n_folds < 2:
        return {**decision, "reason": f"blend.per_class auto needs OOF rows from >= 2 folds to compare, got {n_folds}"}
    fn, sign = prep["fn"], prep["sign"]
    global_oof, class_oof = _cross_fit_per_class(chosen, candidates, y, folds, task, options)
    global_score, class_score = float(fn(y, global_oof)), float(fn(y, class_oof))
    applied = sign * class_score > sign * global_score + MIN_IMPROVEMENT
    decision.update(applied=bool(applied), scores={"global": global_score, "per_class": class_score})
    if not applied:
        decision["reason"] = "the per-class weights did not beat the global ones on cross-fitted rows"
    return decision


def load_candidates(oof_paths: dict[str, str], test_paths: dict[str, str] | None = None):
    """Every ``{backbone}/{head}/{variant}`` candidate of the given OOF (and test) files.

    Returns (oof candidates, test candidates, first OOF file, first test file); the first files
    carry ids, fold and y (every candidate file covers the same rows)."""
    oof_cands: dict[str, np.ndarray] = {}
    test_cands: dict[str, np.ndarray] = {}
    first_oof = first_test = None
    for name, path in oof_paths.items():
        oof = load_npz(path)
        test = load_npz(test_paths[name]) if test_paths else None
        if first_oof is None:
            first_oof, first_test = oof, test
        for key in (k for k in oof if k.startswith("P__")):
            oof_cands[f"{name}/{key[3:]}"] = oof[key]
            if test is not None:
                test_cands[f"{name}/{key[3:]}"] = test[key]
    if first_oof is None:
        raise DataError("blend: no candidate files; check that the workflow lists at least one backbone x head.")
    return oof_cands, test_cands, first_oof, first_test


def blend_files(
    oof_paths: dict[str, str],
    test_paths: dict[str, str],
    task: TaskSpec,
    oof_out,
    test_out,
    weights_out,
    options: BlendOptions = BlendOptions(),
) -> dict:
    """Blend every ``{backbone}/{head}/{variant}`` candidate (``fit_blend`` with ``options``); write the
    blended OOF and test predictions as submitted (``postprocess.finalize_predictions`` with the rounding
    decided on the OOF blend) and ``weights_out``: the ``fit_blend`` result plus ``rounding``
    (``postprocess.decide_rounding``) and, for multilabel, ``labels``: the label-string thresholds chosen
    on the OOF blend (``postprocess.decide_label_thresholds``), which ``submit`` applies under
    ``submission.threshold: auto``."""
    oof_cands, test_cands, oof, test = load_candidates(oof_paths, test_paths)
    result, oof_blend = fit_blend(oof_cands, oof["y"], oof["fold"], task, options)
    log.info(
        "blend method %s (blend.method %s; cross-validated %s per method: %s); OOF %s %.4f",
        result["method"],
        options.method,
        result["criterion"],
        ", ".join(f"{m} {v:.4f}" for m, v in result["method_scores"].items()) or "not compared",
        result["criterion"],
        result["score"],
    )
    result["rounding"] = decide_rounding(oof["y"], oof_blend, task, options.round_mode)
    rounded = result["rounding"]["applied"]
    if task.kind == "multilabel":
        if result["per_class"]["applied"] or result["per_class"]["scores"]:
            log.info(
                "per-class blend weights %s (%s)",
                "kept" if result["per_class"]["applied"] else "not kept",
                result["per_class"].get("reason") or result["per_class"]["scores"],
            )
        result["labels"] = decide_label_thresholds(
            finalize_predictions(oof_blend, task),
            oof["y"],
            oof["fold"],
            options.per_class_threshold,
            min_positives=options.threshold_min_positives,
        )
    save_npz(
        oof_out,
        ids=oof["ids"],
        fold=oof["fold"],
        y=oof["y"],
        P=finalize_predictions(oof_blend, task, round_to_step=rounded).astype(np.float32),
    )
    test_blend = predict_blend(result, test_cands, task)
    save_npz(
        test_out, ids=test["ids"], P=finalize_predictions(test_blend, task, round_to_step=rounded).astype(np.float32)
    )
    write_json(weights_out, result)
    return result
