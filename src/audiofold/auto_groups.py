"""Pseudo-groups for the folds when the table names none: clips clustered into likely speakers or sources.

Folds that mix one speaker's clips (or clips cut from one recording) across training and validation
score a model on voices it has heard, and the OOF score overstates what unseen speakers get. Without
``data.group_column`` the ``auto_groups`` step embeds the training clips with a backbone made for
telling speakers apart (resemblyzer's GE2E encoder by default, ``cv.auto_groups_backbone``) and cuts
an average-linkage tree of their cosine distances at ``cv.auto_groups_threshold``. ``prepare`` then
uses the clusters as fold groups (merged with identical clips, ``cv.group_duplicates``) unless they
cannot make ``cv.n_folds`` folds. The default threshold was chosen on speechocean762, whose speakers
are known (benchmarks/auto_groups.py): the cut that best matches the true speakers (adjusted Rand
index) on half of them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist
from sklearn.metrics import adjusted_rand_score

from .io import read_json, write_csv, write_json, write_meta

log = logging.getLogger(__name__)

DEFAULT_BACKBONE = {"type": "resemblyzer"}
# Chosen on speechocean762 speakers (benchmarks/results/auto_groups.md): the cut with the best adjusted
# Rand index against the true speakers on half of them (0.80; 0.77 on the other half).
DEFAULT_THRESHOLD = 0.275
# The tree needs all pairwise distances (n^2/2 doubles: 400 MB at 10k clips); above this many clips a
# seeded sample is clustered and every other clip joins its nearest cluster (or stays alone).
MAX_CLUSTERED_ROWS = 10_000


def _unit_rows(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)


def cluster_groups(X: np.ndarray, threshold: float, seed: int = 0) -> np.ndarray:
    """Cluster index per row (numbered by first appearance): average-linkage clustering on cosine
    distance, cut where clusters are further apart than ``threshold`` (0: identical direction, 1:
    orthogonal). Deterministic for a fixed ``seed`` (used only above ``MAX_CLUSTERED_ROWS`` rows)."""
    U = _unit_rows(X)
    n = len(U)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    if n <= MAX_CLUSTERED_ROWS:
        # cosine distance of unit rows: 1 - dot; clipped, rounding can make it slightly negative
        tree = linkage(np.clip(pdist(U, "cosine"), 0, None), method="average")
        labels = fcluster(tree, t=threshold, criterion="distance")
        return pd.factorize(labels)[0].astype(np.int64)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, MAX_CLUSTERED_ROWS, replace=False))
    sampled = cluster_groups(U[sample], threshold)
    centroids = _unit_rows(np.stack([U[sample][sampled == c].mean(axis=0) for c in range(sampled.max() + 1)]))
    labels = np.empty(n, dtype=np.int64)
    labels[sample] = sampled
    rest = np.setdiff1d(np.arange(n), sample)
    next_label = int(sampled.max()) + 1
    for start in range(0, len(rest), 4096):  # blocks bound the rows x centroids matrix
        rows = rest[start : start + 4096]
        similarity = U[rows] @ centroids.T
        best = similarity.argmax(axis=1)
        close = 1 - similarity[np.arange(len(rows)), best] <= threshold
        labels[rows[close]] = best[close]
        labels[rows[~close]] = next_label + np.arange((~close).sum())
        next_label += int((~close).sum())
    return pd.factorize(labels)[0].astype(np.int64)


def purity(found: np.ndarray, true: np.ndarray) -> dict:
    """How well clusters match known groups.

    ``purity``: share of clips in their cluster's most common true group (1: no cluster mixes groups).
    ``completeness``: share of clips in their true group's most common cluster (1: no group is split;
    what fold honesty needs, since a split group can land on both sides of a fold). ``split_groups``:
    true groups spread over more than one cluster. ``adjusted_rand``: chance-corrected agreement.
    """
    table = pd.crosstab(pd.Series(np.asarray(found)), pd.Series(np.asarray(true)))
    n = table.values.sum()
    return {
        "n_clusters": int(table.shape[0]),
        "n_true_groups": int(table.shape[1]),
        "purity": round(float(table.max(axis=1).sum() / n), 4),
        "completeness": round(float(table.max(axis=0).sum() / n), 4),
        "split_groups": int(((table > 0).sum(axis=0) > 1).sum()),
        "adjusted_rand": round(float(adjusted_rand_score(true, found)), 4),
    }


def auto_groups(
    ids: list[str], X: np.ndarray, threshold: float, backbone: str, groups_out: str | Path, summary_out: str | Path
) -> dict:
    """Cluster the training clips' embeddings; write ``groups_out`` (id, group) and ``summary_out``
    (counts, threshold, backbone). Whether the folds use them is ``prepare``'s decision (it knows cv.n_folds)."""
    labels = cluster_groups(X, threshold)
    sizes = np.bincount(labels) if len(labels) else np.zeros(0, dtype=np.int64)
    table = pd.DataFrame({"id": [str(i) for i in ids], "group": [f"auto{k:05d}" for k in labels]})
    summary = {
        "backbone": backbone,
        "threshold": threshold,
        "n_clips": len(ids),
        "n_groups": int(len(sizes)),
        "largest_group": int(sizes.max()) if len(sizes) else 0,
        "singletons": int((sizes == 1).sum()),
        "median_group": float(np.median(sizes)) if len(sizes) else 0.0,
    }
    log.info(
        "auto groups: %d clips -> %d groups (largest %d, %d alone) on %s embeddings, cosine threshold %g",
        len(ids),
        summary["n_groups"],
        summary["largest_group"],
        summary["singletons"],
        backbone,
        threshold,
    )
    write_csv(groups_out, table)
    write_meta(groups_out, **summary)
    write_json(summary_out, summary)
    return summary


def read_auto_groups(groups_path: str | Path, summary_path: str | Path) -> tuple[dict[str, str], dict]:
    """({clip id: pseudo-group}, the step's summary) as ``prepare`` reads them."""
    table = pd.read_csv(groups_path, dtype=str, keep_default_na=False)
    return dict(zip(table["id"], table["group"])), read_json(summary_path)


def usable(groups: np.ndarray, n_folds: int) -> str | None:
    """Why the pseudo-groups cannot make the folds (None when they can): fewer groups than folds, or one
    group holding more rows than a fold should (the embedding then does not tell these clips apart:
    speaker clusters of non-speech audio, say), where grouped folds would be badly unbalanced."""
    sizes = pd.Series(groups).value_counts()
    if len(sizes) < n_folds:
        return f"only {len(sizes)} pseudo-group(s), fewer than cv.n_folds={n_folds}"
    if sizes.iloc[0] > len(groups) / n_folds:
        return (
            f"the largest pseudo-group holds {sizes.iloc[0]} of {len(groups)} clips, more than one fold's share; "
            "the embedding does not separate these clips"
        )
    return None
