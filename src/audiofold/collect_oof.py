"""Gather per-fold predictions into out-of-fold (OOF) and test candidates, with scores.

Test predictions (``cv.test_predictions``): ``folds`` averages the fold models, ``refit`` takes the
model refit on every training row, ``auto`` takes the refit for each variant unless averaging inner
models scored better one level down (the folds' ``nested__*`` predictions against their own model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import metrics
from .io import load_npz, save_npz, write_json
from .tasks import TaskSpec


def collect(
    fold_pred_paths: list[str | Path],
    targets_path: str | Path,
    task: TaskSpec,
    oof_out: str | Path,
    test_out: str | Path,
    scores_out: str | Path,
    refit_path: str | Path | None = None,
    test_predictions: str = "folds",
) -> dict:
    targets = load_npz(targets_path)
    ids = [str(i) for i in targets["ids"]]
    y, folds = targets["y"], targets["fold"]
    row = {i: r for r, i in enumerate(ids)}
    oof: dict[str, np.ndarray] = {}
    nested: dict[str, np.ndarray] = {}
    test_sum: dict[str, np.ndarray] = {}
    test_ids = None
    filled = np.zeros(len(ids), dtype=bool)
    for path in fold_pred_paths:
        part = load_npz(path)
        rows = [row[str(i)] for i in part["val_ids"]]
        filled[rows] = True
        for key, P in part.items():
            if key.startswith("val__"):
                variant = key[len("val__") :]
                oof.setdefault(variant, np.full((len(ids), P.shape[1]), np.nan, dtype=np.float32))[rows] = P
            elif key.startswith("test__"):
                variant = key[len("test__") :]
                test_sum[variant] = test_sum.get(variant, 0) + P.astype(np.float64)
            elif key.startswith("nested__"):
                variant = key[len("nested__") :]
                nested.setdefault(variant, np.full((len(ids), P.shape[1]), np.nan))[rows] = P
        test_ids = part["test_ids"]
    if not filled.all():
        raise RuntimeError(f"{int((~filled).sum())} training rows have no OOF prediction; are all folds listed?")

    n_folds = len(fold_pred_paths)
    save_npz(oof_out, ids=np.asarray(ids, dtype=str), fold=folds, y=y, **{f"P__{v}": P for v, P in oof.items()})
    test = {v: S / n_folds for v, S in test_sum.items()}
    choice = None
    if test_predictions != "folds":
        if refit_path is None:
            raise ValueError(f"test_predictions={test_predictions!r} needs the refit's predictions (refit_path).")
        refit = load_npz(refit_path)
        if [str(i) for i in refit["test_ids"]] != [str(i) for i in test_ids]:
            raise RuntimeError(f"{refit_path}: test ids differ from the fold predictions'; rerun the refit job.")
        choice = choose_test_predictions(y, oof, nested, task, test_predictions)
        test = {v: refit[f"test__{v}"] if choice["chosen"][v] == "refit" else P for v, P in test.items()}
    save_npz(test_out, ids=test_ids, **{f"P__{v}": np.asarray(P, dtype=np.float32) for v, P in test.items()})

    scores = {"primary": metrics.primary(task.kind)[0], "variants": {}}
    if choice is not None:
        scores["test_predictions"] = choice
    for variant, P in oof.items():
        per_fold = {int(k): metrics.score(y[folds == k], P[folds == k], task) for k in np.unique(folds)}
        scores["variants"][variant] = {"overall": metrics.score(y, P, task), "per_fold": per_fold}
    baseline = np.concatenate(
        [metrics.baseline_predictions(y[folds != k], int((folds == k).sum()), task) for k in np.unique(folds)]
    )
    order = np.concatenate([np.flatnonzero(folds == k) for k in np.unique(folds)])
    scores["baseline"] = metrics.score(y[order], baseline, task)
    write_json(scores_out, scores)
    return scores


def choose_test_predictions(
    y: np.ndarray, oof: dict[str, np.ndarray], nested: dict[str, np.ndarray], task: TaskSpec, mode: str
) -> dict:
    """Per variant, ``refit`` or ``folds`` for the test predictions.

    ``auto`` compares, on the OOF rows, each fold's own model (a refit on the outer training rows)
    with the average of inner models (fold-averaging one level down) and keeps the refit where it
    scores at least as well; without nested predictions (``refit`` mode, or fewer than three folds)
    every variant takes the refit.
    """
    name, greater_is_better = metrics.primary(task.kind)
    out = {"mode": mode, "primary": name, "chosen": {}, "nested": {}}
    for variant, P in oof.items():
        if mode != "auto" or variant not in nested:
            out["chosen"][variant] = "refit"
            continue
        refit_score = metrics.score(y, P, task)[name]
        folds_score = metrics.score(y, nested[variant], task)[name]
        refit_wins = refit_score >= folds_score if greater_is_better else refit_score <= folds_score
        out["chosen"][variant] = "refit" if refit_wins else "folds"
        out["nested"][variant] = {"refit": float(refit_score), "folds": float(folds_score)}
    return out
