"""Cross-validation folds: seeded, stratified for the task kind, group-aware, or predefined."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold, StratifiedKFold, KFold

from .errors import DataError
from .tasks import TaskSpec


def _regression_strata(y: np.ndarray, n_bins: int, n_folds: int) -> np.ndarray:
    """Quantile bins of the (first) target, merged until every bin can feed every fold."""
    target = y[:, 0] if y.ndim == 2 else y
    for bins in range(n_bins, 1, -1):
        edges = np.unique(np.quantile(target, np.linspace(0, 1, bins + 1)[1:-1]))
        strata = np.digitize(target, edges)
        if np.bincount(strata).min() >= n_folds:
            return strata
    return np.zeros(len(target), dtype=int)


def make_folds(
    y: np.ndarray,
    task: TaskSpec,
    n_folds: int,
    seed: int,
    groups: np.ndarray | None = None,
    predefined: np.ndarray | None = None,
    n_bins: int = 10,
) -> tuple[np.ndarray, str]:
    """Fold index (0..K-1) per row and a one-line description of the scheme used."""
    n = len(y)
    if predefined is not None:
        values = pd.Series(predefined)
        if values.isna().any():
            raise DataError(f"fold column has {int(values.isna().sum())} empty value(s) (first at row {int(values.isna().idxmax()) + 2}).")
        codes, uniques = pd.factorize(values, sort=True)
        return codes.astype(np.int64), f"predefined folds ({len(uniques)}: {list(uniques)})"
    if n < n_folds:
        raise DataError(f"{n} training rows cannot fill cv.n_folds={n_folds} folds; lower cv.n_folds.")
    folds = np.full(n, -1, dtype=np.int64)
    index = np.arange(n)

    if task.kind == "multilabel":
        strata = None
        if groups is None:
            from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

            splitter = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            splits = splitter.split(index, y)
            scheme = "multilabel-stratified (iterative stratification)"
        else:
            strata = y.argmax(axis=1)  # groups win over label balance: stratify on the first label
    elif task.kind == "classification":
        strata = y
    else:
        strata = _regression_strata(y, n_bins, n_folds)

    if groups is not None:
        n_groups = len(pd.unique(groups))
        if n_groups < n_folds:
            raise DataError(f"group column has {n_groups} groups, fewer than cv.n_folds={n_folds}; lower cv.n_folds.")
        try:
            splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            splits = list(splitter.split(index, strata, groups))
            scheme = "stratified group k-fold"
        except ValueError:
            splits = GroupKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(index, groups=groups)
            scheme = "group k-fold"
    elif task.kind != "multilabel":
        counts = np.bincount(np.asarray(strata, dtype=np.int64))
        if counts[counts > 0].min() >= n_folds:
            splits = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(index, strata)
            scheme = "stratified k-fold" + (" on label bins" if task.is_regression else "")
        else:
            splits = KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(index)
            scheme = "k-fold (a class has fewer rows than folds, so no stratification)"

    for k, (_, val) in enumerate(splits):
        folds[val] = k
    assert (folds >= 0).all()
    return folds, f"{scheme}, {n_folds} folds, seed {seed}"
