"""Honest score of the whole ensemble step: everything chosen on OOF is chosen again per outer fold.

The blend's own OOF score is in-sample: calibration keep/drop, the blend method, candidate
pruning, blend weights and the rounding decision are all chosen on the very OOF rows they are
then scored on (on the demo that flatters RMSE by 0.5-2.5 %, and pure-noise candidates still win
weight). Here, for each outer fold k, the same code (``calibrate.calibrate_candidate``,
``blend.fit_blend`` with its method choice, ``submit.decide_rounding``) makes those choices from
the OOF rows of the other folds only (``auto`` compares the methods cross-fitted over those
folds), and the choices are applied to fold k's rows as they are applied to the test set:
calibrated by the mean of the inner folds' calibrators, blended with the inner weights or
stacker (multilabel: ranks over fold k's own block, as the test blend ranks the test block),
rounded or not. The concatenated
fold-k predictions form a nested OOF prediction whose score estimates what the submission scores.

Not re-chosen: the multilabel label-string threshold (it only writes label strings; no metric of
the task scores them) and each head's own fitting, which is already out of fold.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import metrics
from .blend import fit_blend, load_candidates, predict_blend
from .calibrate import calibrate_candidate
from .errors import DataError
from .io import save_npz, write_json
from .submit import decide_rounding, finalize_predictions
from .tasks import TaskSpec

# Calibration, and the blend methods that cross-fit (auto, stack), work on the folds inside the
# outer training part, which needs two folds there.
MIN_FOLDS_WITH_CALIBRATION = 3


def min_folds(calibrate: bool, method: str) -> int:
    """Folds the nested score needs: 3 where something is cross-fitted inside the outer training part."""
    return MIN_FOLDS_WITH_CALIBRATION if calibrate or method in ("auto", "stack") else 2


def _why(calibrate: bool, method: str) -> str:
    if calibrate:
        return " (calibration is cross-fitted inside the other folds)."
    if method in ("auto", "stack"):
        return f" (blend.method {method} is cross-fitted inside the other folds)."
    return "."


def nested_blend(
    candidates: dict[str, np.ndarray],
    y: np.ndarray,
    folds: np.ndarray,
    task: TaskSpec,
    *,
    calibrate: bool = True,
    step: float = 0.1,
    max_candidates: int = 6,
    round_mode: str = "auto",
    method: str = "auto",
    greedy_rounds: int = 25,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Nested OOF prediction of the calibrate -> blend -> round chain and what each outer fold chose.

    ``candidates``: uncalibrated OOF predictions (name -> (n, D)), rows aligned with ``y`` and
    ``folds``. Fold k's rows of the result depend on fold k's targets through nothing.
    Returns (P (n, D) float64, one dict per outer fold: fold, method (the one chosen), method_scores
    (``fit_blend``'s cross-validated comparison, empty without one), weights (non-zero; for the
    stacker each candidate's coefficient share), calibrated (candidates whose calibration was kept),
    rounding (``decide_rounding``), inner_score).
    """
    folds = np.asarray(folds)
    fold_ids = np.unique(folds)
    minimum = min_folds(calibrate, method)
    if len(fold_ids) < minimum:
        raise DataError(
            f"nested blend score: {len(fold_ids)} fold(s); it needs cv.n_folds >= {minimum}" + _why(calibrate, method)
        )
    first = next(iter(candidates.values()))
    nested = np.full((len(first), np.asarray(first).reshape(len(first), -1).shape[1]), np.nan)
    chosen = []
    for k in fold_ids:
        inner, outer = folds != k, folds == k
        inner_cands, outer_cands, calibrated = {}, {}, []
        for name, P in candidates.items():
            if calibrate:
                inner_cands[name], outer_cands[name], decision = calibrate_candidate(
                    P[inner], y[inner], folds[inner], P[outer], task
                )
                if decision["applied"]:
                    calibrated.append(name)
            else:
                inner_cands[name], outer_cands[name] = P[inner], P[outer]
        fitted, inner_blend = fit_blend(
            inner_cands,
            y[inner],
            folds[inner],
            task,
            method=method,
            step=step,
            max_candidates=max_candidates,
            greedy_rounds=greedy_rounds,
        )
        rounding = decide_rounding(y[inner], inner_blend, task, round_mode)
        nested[outer] = finalize_predictions(
            predict_blend(fitted, outer_cands, task), task, round_to_step=rounding["applied"]
        )
        chosen.append(
            {
                "fold": int(k),
                "method": fitted["method"],
                "method_scores": fitted["method_scores"],
                "weights": {name: w for name, w in fitted["weights"].items() if w > 0},
                "calibrated": calibrated,
                "rounding": rounding,
                "inner_score": fitted["score"],
            }
        )
    return nested, chosen


def nested_files(
    oof_paths: dict[str, str],
    task: TaskSpec,
    oof_out,
    summary_out,
    *,
    calibrate: bool = True,
    step: float = 0.1,
    max_candidates: int = 6,
    round_mode: str = "auto",
    method: str = "auto",
    greedy_rounds: int = 25,
) -> dict:
    """Nested blend of the uncalibrated candidate files; write its OOF (ids, fold, y, P) and a summary.

    Summary: overall and per_fold (the task's metrics of the nested OOF prediction) and folds
    (what each outer fold chose, ``nested_blend``); with too few folds to nest, overall is None
    and ``skipped`` says why (P is then NaN)."""
    candidates, _, oof, _ = load_candidates(oof_paths)
    y, folds = oof["y"], oof["fold"]
    n_folds, minimum = len(np.unique(folds)), min_folds(calibrate, method)
    if n_folds < minimum:  # too few folds to nest: say so instead of failing the run
        reason = f"not computed: {n_folds} folds; the nested score needs cv.n_folds >= {minimum}"
        save_npz(
            oof_out,
            ids=oof["ids"],
            fold=folds,
            y=y,
            P=np.full(np.shape(next(iter(candidates.values()))), np.nan, dtype=np.float32),
        )
        summary = {"overall": None, "per_fold": {}, "folds": [], "skipped": reason}
        write_json(summary_out, summary)
        return summary
    P, chosen = nested_blend(
        candidates,
        y,
        folds,
        task,
        calibrate=calibrate,
        step=step,
        max_candidates=max_candidates,
        round_mode=round_mode,
        method=method,
        greedy_rounds=greedy_rounds,
    )
    summary = {
        "overall": metrics.score(y, P, task),
        "per_fold": {int(k): metrics.score(y[folds == k], P[folds == k], task) for k in np.unique(folds)},
        "folds": chosen,
    }
    save_npz(oof_out, ids=oof["ids"], fold=folds, y=y, P=P.astype(np.float32))
    write_json(summary_out, summary)
    return summary
