"""Cross-validation folds: seeded, stratified for the task kind, group-aware, or predefined."""

from __future__ import annotations

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

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
    groups_from: str = "data.group_column",
) -> tuple[np.ndarray, str]:
    """Fold index (0..K-1) per row and a one-line description of the scheme used.

    ``groups_from`` names where the groups came from, for the error when there are too few of them.
    """
    n = len(y)
    if predefined is not None:
        values = pd.Series(predefined)
        if values.isna().any():
            raise DataError(
                f"fold column has {int(values.isna().sum())} empty value(s) (first at row {int(values.isna().idxmax()) + 2})."
            )
        codes, uniques = pd.factorize(values, sort=True)
        return codes.astype(np.int64), f"predefined folds ({len(uniques)}: {list(uniques)})"
    if n < n_folds:
        raise DataError(f"{n} training rows cannot fill cv.n_folds={n_folds} folds; lower cv.n_folds.")
    folds = np.full(n, -1, dtype=np.int64)
    index = np.arange(n)

    if groups is not None:
        n_groups = len(pd.unique(groups))
        if n_groups < n_folds:
            raise DataError(
                f"{groups_from} has {n_groups} groups, fewer than cv.n_folds={n_folds}: every fold needs a "
                f"group of its own. Set cv.n_folds to at most {n_groups} (or data.group_column: null)."
            )

    if task.kind == "multilabel":
        if groups is None:
            splits = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(index, y)
            scheme = "multilabel-stratified (iterative stratification)"
        else:
            splits, scheme = _multilabel_group_splits(y, groups, n_folds, seed)
    elif groups is not None:
        strata = y if task.kind == "classification" else _regression_strata(y, n_bins, n_folds)
        try:
            splits = list(
                StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(index, strata, groups)
            )
            scheme = "stratified group k-fold"
        except ValueError:
            splits = GroupKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(index, groups=groups)
            scheme = "group k-fold"
    else:
        strata = y if task.kind == "classification" else _regression_strata(y, n_bins, n_folds)
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


def _multilabel_group_splits(y: np.ndarray, groups: np.ndarray, n_folds: int, seed: int):
    """Iterative stratification over groups: each group carries the union of its rows' labels.

    Stratifying rows and then moving groups, or stratifying on one label per row, loses the label
    balance (rare labels pile up in a few folds); stratifying the groups themselves keeps it while
    a group never spans two folds.
    """
    codes, uniques = pd.factorize(pd.Series(groups))
    group_labels = np.zeros((len(uniques), y.shape[1]), dtype=bool)
    np.logical_or.at(group_labels, codes, np.asarray(y) > 0.5)
    try:
        group_splits = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(
            np.arange(len(uniques)), group_labels
        )
    except ValueError:  # a single class: nothing to stratify
        return GroupKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(codes, groups=codes), "group k-fold"
    group_fold = np.empty(len(uniques), dtype=np.int64)
    for k, (_, val) in enumerate(group_splits):
        group_fold[val] = k
    row_fold = group_fold[codes]
    splits = [(np.flatnonzero(row_fold != k), np.flatnonzero(row_fold == k)) for k in range(n_folds)]
    return splits, "multilabel-stratified group k-fold (iterative stratification over groups)"


def duplicate_sets(hashes: np.ndarray) -> list[np.ndarray]:
    """Row indices of each set of two or more rows with the same non-empty content hash, in row order."""
    codes, uniques = pd.factorize(pd.Series(hashes, dtype=object).replace("", None))
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    return [np.flatnonzero(codes == c) for c in np.flatnonzero(counts > 1)]


def merge_groups(keys: list[np.ndarray | None]) -> np.ndarray:
    """Connected components of rows linked by any shared key value (union-find over several columns).

    Each array in ``keys`` gives one value per row; ``None``/empty values link nothing. Returns the
    component index per row, numbered in order of each component's first row.
    """
    n = len(next(k for k in keys if k is not None))
    rows, nodes, n_nodes = [], [], n
    for key in keys:
        if key is None:
            continue
        codes, uniques = pd.factorize(pd.Series(key, dtype=object).replace("", None))
        linked = np.flatnonzero(codes >= 0)
        rows.append(linked)
        nodes.append(n_nodes + codes[linked])  # one node per key value, joined to each of its rows
        n_nodes += len(uniques)
    a, b = np.concatenate(rows or [[]]).astype(np.int64), np.concatenate(nodes or [[]]).astype(np.int64)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n_nodes, n_nodes))
    _, labels = connected_components(graph, directed=False)
    return pd.factorize(labels[:n])[0].astype(np.int64)  # numbered by first appearance: stable
