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
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .io import write_json

log = logging.getLogger(__name__)

WARN_AUC = 0.7
N_SPLITS = 5
# Strong L2 regularisation: embeddings are wide and the question is a broad difference, not a
# handful of rows a flexible model could isolate.
C = 0.05
# Rows per side the classifier sees: enough to measure a broad train/test difference (the AUC's
# standard error at 10k + 10k rows is under 0.005), and the job's memory and time stop growing with N.
MAX_ROWS_PER_SIDE = 10_000


def cap_rows(X: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``limit`` rows of X, a seeded sample without replacement (all of X when smaller)."""
    if len(X) <= limit:
        return X
    return X[np.sort(rng.choice(len(X), limit, replace=False))]


def adversarial_auc(X_train: np.ndarray, X_test: np.ndarray, seed: int = 0) -> float | None:
    """Cross-validated ROC AUC of standardized logistic regression separating test rows from
    training rows (at most ``MAX_ROWS_PER_SIDE`` of each, sampled); None when either side has
    fewer than two rows."""
    k = min(N_SPLITS, len(X_train), len(X_test))
    if k < 2:
        return None
    rng = np.random.default_rng(seed)
    X_train, X_test = cap_rows(X_train, MAX_ROWS_PER_SIDE, rng), cap_rows(X_test, MAX_ROWS_PER_SIDE, rng)
    X = np.vstack([X_train, X_test])
    is_test = np.r_[np.zeros(len(X_train)), np.ones(len(X_test))].astype(np.int64)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000, random_state=seed))
    splits = StratifiedKFold(k, shuffle=True, random_state=seed)
    P = cross_val_predict(model, X, is_test, cv=splits, method="predict_proba")[:, 1]
    return float(roc_auc_score(is_test, P))


def shift_report(
    train_shards: list[str | Path], test_shards: list[str | Path], backbone: str, seed: int, out: str | Path
) -> dict:
    """Adversarial AUC on one backbone's pooled embeddings -> ``out`` (json); warns above WARN_AUC."""
    from .train import load_embeddings

    _, X_train = load_embeddings(train_shards)
    _, X_test = load_embeddings(test_shards)
    auc = adversarial_auc(X_train, X_test, seed)
    info = {
        "backbone": backbone,
        "auc": None if auc is None else round(auc, 4),
        "n_train": len(X_train),
        "n_test": len(X_test),
        "max_rows_per_side": MAX_ROWS_PER_SIDE,
        "warn_above": WARN_AUC,
        "shifted": bool(auc is not None and auc > WARN_AUC),
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
    write_json(out, info)
    return info
