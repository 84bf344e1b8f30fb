"""Gather per-fold predictions into out-of-fold (OOF) and fold-averaged test candidates, with scores."""

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
) -> dict:
    targets = load_npz(targets_path)
    ids = [str(i) for i in targets["ids"]]
    y, folds = targets["y"], targets["fold"]
    row = {i: r for r, i in enumerate(ids)}
    oof: dict[str, np.ndarray] = {}
    test_sum: dict[str, np.ndarray] = {}
    test_ids = None
    filled = np.zeros(len(ids), dtype=bool)
    for path in fold_pred_paths:
        part = load_npz(path)
        rows = [row[str(i)] for i in part["val_ids"]]
        filled[rows] = True
        for key, P in part.items():
            if key.startswith("val__"):
                variant = key[len("val__"):]
                oof.setdefault(variant, np.full((len(ids), P.shape[1]), np.nan, dtype=np.float32))[rows] = P
            elif key.startswith("test__"):
                variant = key[len("test__"):]
                test_sum[variant] = test_sum.get(variant, 0) + P.astype(np.float64)
        test_ids = part["test_ids"]
    if not filled.all():
        raise RuntimeError(f"{int((~filled).sum())} training rows have no OOF prediction; are all folds listed?")

    n_folds = len(fold_pred_paths)
    save_npz(oof_out, ids=np.asarray(ids, dtype=str), fold=folds, y=y, **{f"P__{v}": P for v, P in oof.items()})
    save_npz(test_out, ids=test_ids, **{f"P__{v}": (S / n_folds).astype(np.float32) for v, S in test_sum.items()})

    scores = {"primary": metrics.primary(task.kind)[0], "variants": {}}
    for variant, P in oof.items():
        per_fold = {int(k): metrics.score(y[folds == k], P[folds == k], task) for k in np.unique(folds)}
        scores["variants"][variant] = {"overall": metrics.score(y, P, task), "per_fold": per_fold}
    baseline = np.concatenate([
        metrics.baseline_predictions(y[folds != k], int((folds == k).sum()), task) for k in np.unique(folds)
    ])
    order = np.concatenate([np.flatnonzero(folds == k) for k in np.unique(folds)])
    scores["baseline"] = metrics.score(y[order], baseline, task)
    write_json(scores_out, scores)
    return scores
