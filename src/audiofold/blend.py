"""Blend weights by grid search over the weight simplex against an OOF criterion.

Criteria: regression kinds -> RMSE (mean over targets); classification -> log loss (accuracy
ties too often to separate blends); multilabel -> lwlrap of rank-averaged scores (each
candidate's class columns become ranks scaled to [0, 1], so candidates on different score
scales mix fairly). ``apply_weights`` applies the same transform to test predictions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.stats import rankdata

from . import metrics
from .errors import ConfigError, DataError
from .io import load_npz, save_npz, write_json
from .submit import decide_rounding, finalize_predictions
from .tasks import TaskSpec

# A grid point replaces the incumbent only if better by more than this (float noise is no gain).
MIN_IMPROVEMENT = 1e-12


def _criterion(task: TaskSpec) -> tuple[str, bool, Callable[[np.ndarray, np.ndarray], float]]:
    """(name, greater_is_better, fn(y, P)) of the blend search for this task kind."""
    if task.is_regression:
        return "rmse", False, metrics.rmse
    if task.kind == "classification":
        return "log_loss", False, lambda y, P: metrics.classification_log_loss(y, P, task)
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


def _combine(weights: np.ndarray, transformed: np.ndarray, task: TaskSpec) -> np.ndarray:
    """Weighted sum of the stacked transformed candidates (N, n, C)."""
    blended = np.tensordot(weights, transformed, axes=1)
    if task.kind == "classification":
        blended = blended / blended.sum(axis=1, keepdims=True)
    return blended


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


def search_weights(
    candidates: dict[str, np.ndarray],
    y: np.ndarray,
    task: TaskSpec,
    step: float = 0.1,
    max_candidates: int = 6,
) -> dict[str, Any]:
    """Best simplex weights for the OOF candidates.

    Returns weights (every input candidate; 0.0 for those left out), score (criterion of the
    blend), criterion, greater_is_better, single_scores (criterion of each candidate alone,
    after the same transform), n_grid (points evaluated) and searched (candidates in the grid,
    best single first). Candidates beyond ``max_candidates`` (ranked by single score) get 0.
    """
    _check_candidates(candidates, n_rows=len(y))
    if max_candidates < 1:
        raise ConfigError(f"blend.max_candidates: must be >= 1, got {max_candidates}.")
    criterion, greater_is_better, fn = _criterion(task)
    sign = 1.0 if greater_is_better else -1.0  # search maximises sign * score

    transformed = {name: _transform(P, task) for name, P in candidates.items()}
    single_scores = {name: float(fn(y, _combine(np.ones(1), P[None], task))) for name, P in transformed.items()}
    # best single first; names break ties so the result does not depend on dict order
    ranked = sorted(candidates, key=lambda name: (-sign * single_scores[name], name))
    searched = ranked[:max_candidates]
    stack = np.stack([transformed[name] for name in searched])

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
        "criterion": criterion,
        "greater_is_better": greater_is_better,
        "single_scores": single_scores,
        "n_grid": int(len(grid)),
        "searched": searched,
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
    step: float = 0.1,
    max_candidates: int = 6,
    round_mode: str = "auto",
) -> dict:
    """Blend every ``{backbone}/{head}/{variant}`` candidate; write the blended OOF and test predictions
    as submitted (``submit.finalize_predictions`` with the rounding decided on the OOF blend) and
    ``weights_out``: the search result plus ``rounding`` (``submit.decide_rounding``)."""
    oof_cands, test_cands, oof, test = load_candidates(oof_paths, test_paths)
    result = search_weights(oof_cands, oof["y"], task, step=step, max_candidates=max_candidates)
    oof_blend = apply_weights(result["weights"], oof_cands, task)
    result["rounding"] = decide_rounding(oof["y"], oof_blend, task, round_mode)
    rounded = result["rounding"]["applied"]
    save_npz(
        oof_out,
        ids=oof["ids"],
        fold=oof["fold"],
        y=oof["y"],
        P=finalize_predictions(oof_blend, task, round_to_step=rounded).astype(np.float32),
    )
    test_blend = apply_weights(result["weights"], test_cands, task)
    save_npz(
        test_out, ids=test["ids"], P=finalize_predictions(test_blend, task, round_to_step=rounded).astype(np.float32)
    )
    write_json(weights_out, result)
    return result
