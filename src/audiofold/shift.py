"""Adversarial validation: how well a classifier tells training clips from test clips.

An out-of-fold ROC AUC near 0.5 means the test set looks like training; well above it (speakers,
devices or source recordings the folds never separated) means the OOF scores may overstate
what the submission will score.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .embed import load_embeddings
from .io import save_npz, write_json

log = logging.getLogger(__name__)

WARN_AUC = 0.7
N_SPLITS = 5
# Strong L2 regularisation: embeddings are wide and the question is a broad difference, not a
# handful of rows a flexible model could isolate.
C = 0.05
# Rows per side the classifier sees: enough to measure a broad train/test difference (the AUC's
# standard error at 10k + 10k rows is under 0.005), and the job's memory and time stop growing with N.
MAX_ROWS_PER_SIDE = 10_000
# Importance weights (mean 1) are cut here: unclipped odds let a few test-like rows dominate and the
# weighted score's variance explode; 10 is a common cut for importance-weighted CV.
WEIGHT_CLIP = 10.0
PREDICT_BLOCK = 8192


def cap_rows(X: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``limit`` rows of X, a seeded sample without replacement (all of X when smaller)."""
    if len(X) <= limit:
        return X
    return X[np.sort(rng.choice(len(X), limit, replace=False))]


def adversarial_auc(X_train: np.ndarray, X_test: np.ndarray, seed: int = 0) -> float | None:
    """Cross-validated ROC AUC of standardized logistic regression separating test rows from
    training rows (at most ``MAX_ROWS_PER_SIDE`` of each, sampled); None when either side has
    fewer than two rows."""
    return adversarial(X_train, X_test, seed)[0]


def adversarial(X_train: np.ndarray, X_test: np.ndarray, seed: int = 0) -> tuple[float | None, np.ndarray | None]:
    """(the adversarial ROC AUC, each training row's out-of-fold probability of being a test row).

    A training row the classifier saw (at most ``MAX_ROWS_PER_SIDE``, sampled) gets the prediction of
    the fold model that did not train on it; a row left out of the sample gets the mean of the fold
    models' predictions. (None, None) when either side has fewer than two rows.
    """
    k = min(N_SPLITS, len(X_train), len(X_test))
    if k < 2:
        return None, None
    rng = np.random.default_rng(seed)
    train_rows = cap_rows(np.arange(len(X_train))[:, None], MAX_ROWS_PER_SIDE, rng)[:, 0]
    X_test = cap_rows(X_test, MAX_ROWS_PER_SIDE, rng)
    X = np.vstack([X_train[train_rows], X_test])
    is_test = np.r_[np.zeros(len(train_rows)), np.ones(len(X_test))].astype(np.int64)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000, random_state=seed))
    splits = StratifiedKFold(k, shuffle=True, random_state=seed)
    P = np.empty(len(X))
    unseen = np.setdiff1d(np.arange(len(X_train)), train_rows)
    p_unseen = np.zeros(len(unseen))
    for fit_rows, held_out in splits.split(X, is_test):
        fitted = model.fit(X[fit_rows], is_test[fit_rows])
        P[held_out] = fitted.predict_proba(X[held_out])[:, 1]
        # the rows left out of the sample, a block at a time: no copy of the (up to N-row) matrix
        for start in range(0, len(unseen), PREDICT_BLOCK):
            block = unseen[start : start + PREDICT_BLOCK]
            p_unseen[start : start + len(block)] += fitted.predict_proba(X_train[block])[:, 1] / k
    p_train = np.empty(len(X_train))
    p_train[train_rows] = P[: len(train_rows)]
    p_train[unseen] = p_unseen
    return float(roc_auc_score(is_test, P)), p_train


def importance_weights(p_test: np.ndarray, n_train: int, n_test: int, clip: float = WEIGHT_CLIP) -> np.ndarray:
    """Per training row, how much more test-like than training-like it is: the adversarial odds
    p / (1 - p) times n_train / n_test (undoing the classes' sizes), scaled to mean 1 and cut at
    ``clip`` (then scaled to mean 1 again), so a handful of test-like rows cannot carry the estimate."""
    p = np.clip(np.asarray(p_test, dtype=np.float64), 1e-6, 1 - 1e-6)
    w = p / (1 - p) * (n_train / max(n_test, 1))
    w = w / w.mean()
    for _ in range(10):  # rescaling after the cut can lift a row above it again; a few rounds settle it
        w = np.minimum(w, clip)
        w = w / w.mean()
    return w


def effective_sample_size(w: np.ndarray) -> float:
    """(sum w)^2 / sum w^2: how many equally weighted rows the weighted estimate is worth."""
    w = np.asarray(w, dtype=np.float64)
    return float(w.sum() ** 2 / np.sum(w**2)) if len(w) and np.any(w) else 0.0


def shift_report(
    train_shards: list[str | Path],
    test_shards: list[str | Path],
    backbone: str,
    seed: int,
    out: str | Path,
    weights_out: str | Path | None = None,
) -> dict:
    """Adversarial AUC on one backbone's pooled embeddings -> ``out`` (json); warns above WARN_AUC.

    ``weights_out`` (npz: ids, weight) gets each training row's importance weight
    (``importance_weights``) from the out-of-fold adversarial predictions; all 1 when the AUC is not
    above WARN_AUC (no shift to correct for) or could not be measured. The metrics step scores the nested
    blend with them (a shift-weighted estimate, reported beside the nested one, never used to choose).
    """
    train_ids, X_train = load_embeddings(train_shards)
    _, X_test = load_embeddings(test_shards)
    auc, p_train = adversarial(X_train, X_test, seed)
    shifted = bool(auc is not None and auc > WARN_AUC)
    weights = (
        importance_weights(p_train, min(len(X_train), MAX_ROWS_PER_SIDE), min(len(X_test), MAX_ROWS_PER_SIDE))
        if shifted
        else np.ones(len(X_train))
    )
    info = {
        "backbone": backbone,
        "auc": None if auc is None else round(auc, 4),
        "n_train": len(X_train),
        "n_test": len(X_test),
        "max_rows_per_side": MAX_ROWS_PER_SIDE,
        "warn_above": WARN_AUC,
        "shifted": shifted,
        "weights": {
            "applied": shifted,
            "clip": WEIGHT_CLIP,
            "max": round(float(weights.max()), 4) if len(weights) else None,
            "effective_n": round(effective_sample_size(weights), 1),
        },
    }
    if info["shifted"]:
        log.warning(
            "train/test shift: a classifier tells test clips from training clips with ROC AUC %.3f "
            "(backbone %s); the test set looks different from training, so OOF scores may overstate "
            "the submission's. Check for groups (speakers, recordings) missing from data.group_column.",
            auc,
            backbone,
        )
    else:
        log.info("train/test shift: adversarial ROC AUC %s (backbone %s)", info["auc"], backbone)
    if weights_out is not None:
        save_npz(weights_out, ids=np.asarray(train_ids, dtype=str), weight=weights.astype(np.float64))
    write_json(out, info)
    return info
