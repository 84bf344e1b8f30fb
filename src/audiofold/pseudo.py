"""Teacher-student round (pseudo-labels): a head trained once more on its training rows plus the test
rows its first-round model predicted confidently.

Inside one training job (a fold, or the refit) the first-round model (the teacher) was fitted on that
job's training rows only, so its test predictions depend on no validation row and on no test label.
``select`` turns them into pseudo-labels for the confident test rows; ``augment`` appends those rows
to the training rows; the student (a fresh head, same options and seed) is fitted on both and predicts
the validation rows and the test set again. Its predictions are written as extra variants
``{variant}+pl``, so collect scores them on the real training folds only and the blend (and its nested
score) keeps the second round only where it helps.

Rules (seed 002, "Noisy Data Protocol", adapted to unlabelled test rows):

- classification: the argmax class where the teacher's top probability is >= ``min_confidence``;
  weight = that probability clipped to [0.5, 1].
- multilabel: rows whose every tag is decided (probability >= ``min_confidence`` or <=
  1 - ``min_confidence``) with at least one positive; labels 1 for the positives; weight = the
  largest positive probability clipped to [0.5, 1]. A row with an undecided tag is left out whole:
  unlike the seed's noisy clips there is no weak label to fall back on for it.
- regression kinds: one model gives no per-row confidence, so every row whose prediction lies within
  the training rows' target range (each target) is kept, at the fixed low weight 0.5 (the seed's
  stage A weight for pseudo rows); a prediction outside that range is an extrapolation and is left out.

The teacher's prediction is the mean of the head's variants (one variant for most heads; e.g. the
prompt head's ``main`` and ``knn``), an ensemble as the seed's teacher averages its fold models.
Sample weights reach heads whose ``fit`` takes ``sample_weight`` (linear, lgbm) and fine-tuned
students (``audiofold.finetune``, each row's loss weighted; not ``rating_loss: ccc``, a batch
statistic); the others (knn, torch heads) train on the pseudo rows unweighted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .tasks import TaskSpec

SUFFIX = "+pl"
DEFAULTS = {"min_confidence": 0.8, "weight": "confidence"}
WEIGHTINGS = ("confidence", "equal")
WEIGHT_RANGE = (0.5, 1.0)  # seed 002: teacher confidence clipped to [0.5, 1]
REGRESSION_WEIGHT = 0.5


@dataclass(frozen=True)
class Selection:
    """Test rows chosen as pseudo-labelled training rows: ``rows`` (indices into the test set), their
    labels ``y`` (in the training targets' encoding) and sample ``weight`` (one per row)."""

    rows: np.ndarray
    y: np.ndarray
    weight: np.ndarray

    def summary(self, n_test: int) -> dict:
        return {
            "n_pseudo": len(self.rows),
            "n_test": n_test,
            "mean_weight": round(float(self.weight.mean()), 4) if len(self.rows) else None,
        }


def settings(block: dict | None) -> dict | None:
    """The ``pseudo_labels`` config block with its defaults when it is enabled, else None."""
    if not block or not block.get("enabled"):
        return None
    out = {**DEFAULTS, **block}
    if not 0.5 < out["min_confidence"] <= 1:
        raise ConfigError(
            f"pseudo_labels.min_confidence: must be in (0.5, 1], got {out['min_confidence']!r} (at 0.5 or "
            "below a multilabel tag would count as both positive and negative)."
        )
    if out["weight"] not in WEIGHTINGS:
        raise ConfigError(f"pseudo_labels.weight: must be one of {', '.join(WEIGHTINGS)}, got {out['weight']!r}.")
    return out


def variant_name(variant: str) -> str:
    return f"{variant}{SUFFIX}"


def teacher_prediction(preds: dict[str, np.ndarray]) -> np.ndarray:
    """Mean of the head's output variants (float64, (n, D))."""
    return np.mean([np.asarray(preds[v], dtype=np.float64) for v in sorted(preds)], axis=0)


def select(
    P: np.ndarray,
    task: TaskSpec,
    min_confidence: float,
    y_train: np.ndarray,
    weighted: bool = True,
) -> Selection:
    """Pseudo-labels for the confident rows of the teacher's test prediction ``P`` (n, D), by the
    task kind's rule (module docstring). ``y_train`` (the rows the teacher was fitted on) only gives
    the label encoding and, for regression kinds, the target range. Unweighted: every weight 1."""
    P = np.asarray(P, dtype=np.float64)
    y_train = np.asarray(y_train)
    if task.kind == "classification":
        confidence = P.max(axis=1)
        rows = np.flatnonzero(confidence >= min_confidence)
        y = P[rows].argmax(axis=1).astype(y_train.dtype)
        weight = np.clip(confidence[rows], *WEIGHT_RANGE)
    elif task.kind == "multilabel":
        positive = P >= min_confidence
        decided = positive | (1.0 - P >= min_confidence)  # a negative's confidence is 1 - p
        rows = np.flatnonzero(decided.all(axis=1) & positive.any(axis=1))
        y = positive[rows].astype(y_train.dtype)
        weight = np.clip(np.where(positive[rows], P[rows], 0.0).max(axis=1), *WEIGHT_RANGE)
    else:
        target = y_train.reshape(len(y_train), -1)
        low, high = target.min(axis=0), target.max(axis=0)
        inside = ((P >= low) & (P <= high)).all(axis=1)
        rows = np.flatnonzero(inside)
        y = P[rows].reshape((len(rows), *y_train.shape[1:])).astype(y_train.dtype)
        weight = np.full(len(rows), REGRESSION_WEIGHT)
    if not weighted:
        weight = np.ones(len(rows))
    return Selection(rows=rows, y=y, weight=weight)


def augment(X_train, y_train: np.ndarray, groups: np.ndarray | None, X_test, test_ids, selection: Selection):
    """Training rows plus the selected test rows: (X, y, groups, sample_weight), real rows weight 1.

    X may be an array or a list of per-clip arrays (sequence heads). Each pseudo row is its own group
    (``test:{id}``), so an inner CV that keeps groups together treats it as one more clip."""
    rows = selection.rows
    if isinstance(X_train, list):
        X = list(X_train) + [X_test[r] for r in rows]
    else:
        X = np.concatenate([X_train, np.asarray(X_test)[rows]]) if len(rows) else X_train
    y = np.concatenate([np.asarray(y_train), selection.y]) if len(rows) else np.asarray(y_train)
    if groups is not None:
        groups = np.concatenate(
            [np.asarray(groups).astype(str), np.asarray([f"test:{test_ids[r]}" for r in rows], dtype=str)]
        )
    weight = np.concatenate([np.ones(len(y_train)), selection.weight])
    return X, y, groups, weight
