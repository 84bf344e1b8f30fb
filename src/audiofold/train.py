"""Train one head on one backbone's embeddings for one fold; predict its validation rows and the test set."""

from __future__ import annotations

import inspect
import logging
import time
from pathlib import Path

import joblib
import numpy as np

from . import pseudo
from .embed import load_embeddings
from .errors import DataError, TrainingError
from .heads import HEADS, build_head, head_options
from .io import atomic_path, load_npz, save_npz, write_meta
from .tasks import TaskSpec

log = logging.getLogger(__name__)


def take(X, mask: np.ndarray):
    """Rows of X where ``mask`` is True, for arrays and per-clip lists alike; a view, not a copy,
    when those rows are one contiguous run (``train_fold`` loads a fold's training rows first)."""
    if isinstance(X, list):
        return [x for x, keep in zip(X, mask) if keep]
    rows = np.flatnonzero(mask)
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        return X[rows[0] : rows[-1] + 1]
    return X[mask]


def require_finite(preds: dict[str, np.ndarray], split: str, where: str) -> None:
    """TrainingError naming ``where`` when any variant holds NaN or inf predictions."""
    for variant, P in sorted(preds.items()):
        bad = ~np.isfinite(np.asarray(P, dtype=np.float64))
        if bad.any():
            rows = int(bad.reshape(len(bad), -1).any(axis=1).sum())
            raise TrainingError(
                f"{where}: variant {variant!r} predicts non-finite values (NaN/inf) for {rows} of "
                f"{len(bad)} {split} row(s); see this head's training log (train_loss per epoch), "
                "check the embeddings for NaN/inf, or lower the head's lr."
            )


def training_rows(X, X_crops: np.ndarray | None, y: np.ndarray, groups: np.ndarray | None, rows: np.ndarray):
    """(X, y, groups) a head fits on for the clips where ``rows`` is True: their own rows, or with
    ``X_crops`` (n, K, D) one row per crop, target and group repeated K times. Crops of a clip share
    a group (the clip's own when the data has none), so a head's inner split never puts one crop of
    a clip on each side."""
    fit_groups = None if groups is None else groups[rows]
    if X_crops is None:
        return take(X, rows), y[rows], fit_groups
    block = take(X_crops, rows)  # (m, K, D): a view or the only copy; the reshape below is a view
    m, k = block.shape[:2]
    if fit_groups is None:
        fit_groups = np.flatnonzero(rows)
    return block.reshape(m * k, *block.shape[2:]), np.repeat(y[rows], k, axis=0), np.repeat(fit_groups, k)


def fit_head(head, X, y: np.ndarray, groups: np.ndarray | None, sample_weight: np.ndarray | None = None):
    """``head.fit``, passing the rows' groups to heads whose fit takes them (an inner CV that must
    keep a speaker's or a recording's clips on one side, as the outer folds do), and sample weights
    (pseudo-labelled rows) to heads whose fit takes ``sample_weight``; other heads fit unweighted."""
    accepts = inspect.signature(head.fit).parameters
    options = {}
    if groups is not None and "groups" in accepts:
        options["groups"] = groups
    if sample_weight is not None and "sample_weight" in accepts:
        options["sample_weight"] = sample_weight
    return head.fit(X, y, **options)


def student_round(
    head_params: dict,
    task: TaskSpec,
    seed: int,
    head_name: str | None,
    X_fit,
    y_fit: np.ndarray,
    groups_fit: np.ndarray | None,
    X_val,
    X_test,
    test_ids: list[str],
    teacher,
    settings: dict,
):
    """Round two (``audiofold.pseudo``): a fresh head fitted on the fit rows plus the test rows the
    round-one model ``teacher`` predicted confidently; returns (student, its validation and test
    predictions under ``{variant}+pl``, the selection). ``X_val`` never enters the fit. With no
    confident row the student would be the teacher refitted on the same rows: the teacher stands in."""
    selection = pseudo.select(
        pseudo.teacher_prediction(teacher.predict(X_test)),
        task,
        settings["min_confidence"],
        y_fit,
        weighted=settings["weight"] == "confidence",
    )
    student = teacher
    if len(selection.rows):
        X, y, groups, weight = pseudo.augment(X_fit, y_fit, groups_fit, X_test, test_ids, selection)
        student = build_head({**head_params, **teacher.student_options()}, task, seed, name=head_name)
        fit_head(student, X, y, groups, weight)
    rename = lambda preds: {pseudo.variant_name(v): P for v, P in preds.items()}  # noqa: E731
    val = rename(student.predict(X_val)) if len(X_val) else {}
    return student, val, rename(student.predict(X_test)), selection


def train_fold(
    *,
    train_shards: list[str | Path],
    test_shards: list[str | Path],
    targets_path: str | Path,
    task: TaskSpec,
    fold: int | None,
    head_params: dict,
    head_name: str | None = None,
    seed: int,
    model_out: str | Path,
    preds_out: str | Path,
    meta: dict | None = None,
    threads: int = 1,
    backbone: str | None = None,
    test_predictions: str = "folds",
    pseudo_labels: dict | None = None,
) -> dict:
    """Fit on the rows outside ``fold`` and predict them and the test set; ``fold=None`` is the
    refit on every training row (test predictions only). With ``test_predictions="auto"`` the fold
    also predicts its rows by the average of inner models, one per other fold (``nested__*``), so
    collect can compare refit against fold-averaging one level down. With ``pseudo_labels``
    (config block, ``enabled``) a second round (``student_round``) adds the variants ``{variant}+pl``."""
    targets = load_npz(targets_path)
    y, folds = targets["y"], targets["fold"]
    # the fold's training rows first, then its validation rows (each in table order): the rows a head
    # fits on are then a view of the loaded matrix, not a copy of most of it
    order = np.argsort(folds == fold, kind="stable") if fold is not None else np.arange(len(folds))
    all_ids = [str(targets["ids"][i]) for i in order]
    y, folds = y[order], folds[order]
    groups = None if targets.get("group") is None else targets["group"][order]
    head_type = HEADS.get(head_params.get("type"))
    if head_type is not None and "threads" in head_options(head_type) and "threads" not in head_params:
        head_params = {**head_params, "threads": threads}  # e.g. LightGBM's num_threads follows the rule's threads
    head = build_head(head_params, task, seed, name=head_name)
    inputs = getattr(head, "inputs", "pooled")
    _, X = load_embeddings(train_shards, inputs, all_ids, "training clips")
    test_ids, X_test = load_embeddings(test_shards, inputs)
    X_crops = None
    if head.train_on_crops:  # K x the training rows; the test shards' crops are never read
        _, X_crops = load_embeddings(train_shards, "crops", all_ids, "training clips (per-crop)")

    is_val = folds == fold
    if fold is not None and not is_val.any():
        raise DataError(f"fold {fold} has no rows; check cv.n_folds / data.fold_column.")
    where = f"head {head_name or head_params.get('type')!r} on backbone {backbone or '?'!r}, " + (
        f"fold {fold}" if fold is not None else "refit on all training rows"
    )
    started = time.perf_counter()
    fit_X, fit_y, fit_groups = training_rows(X, X_crops, y, groups, ~is_val)
    try:
        fit_head(head, fit_X, fit_y, fit_groups)
    except TrainingError as exc:
        raise TrainingError(f"{where}: {exc}") from None
    fit_seconds = time.perf_counter() - started
    n_fit_rows = len(fit_y)
    del fit_X, fit_y, fit_groups
    val_pred = head.predict(take(X, is_val)) if is_val.any() else {}
    test_pred = head.predict(X_test)
    settings = pseudo.settings(pseudo_labels)
    model = head
    if settings is not None:
        started = time.perf_counter()
        try:
            student, val_pl, test_pl, selection = student_round(
                head_params,
                task,
                seed,
                head_name,
                *training_rows(X, X_crops, y, groups, ~is_val),
                take(X, is_val),
                X_test,
                test_ids,
                head,
                settings,
            )
        except TrainingError as exc:
            raise TrainingError(f"{where}, pseudo-label round: {exc}") from None
        val_pred, test_pred = {**val_pred, **val_pl}, {**test_pred, **test_pl}
        model = {"teacher": head, "student": student}
        pseudo_info = {**selection.summary(len(test_ids)), **settings}
        pseudo_info["fit_seconds"] = round(time.perf_counter() - started, 3)
    nested = {}
    if test_predictions == "auto" and fold is not None:
        nested = nested_fold_average(
            head_params, task, seed, head_name, X, y, folds, groups, fold, X_crops, X_test, test_ids, settings
        )
    # A NaN here would only surface in calibrate/blend, after every other fold and head has run.
    require_finite(val_pred, "validation", where)
    require_finite(test_pred, "test", where)

    with atomic_path(model_out) as tmp:
        joblib.dump(model, tmp)
    arrays = {"val_ids": np.asarray(all_ids, dtype=str)[is_val], "test_ids": np.asarray(test_ids, dtype=str)}
    for variant, P in test_pred.items():
        if variant in val_pred:
            arrays[f"val__{variant}"] = np.asarray(val_pred[variant], dtype=np.float32)
        arrays[f"test__{variant}"] = np.asarray(P, dtype=np.float32)
    for variant, P in nested.items():
        arrays[f"nested__{variant}"] = np.asarray(P, dtype=np.float32)
    save_npz(preds_out, **arrays)
    info = {
        "fold": fold,
        "n_train": int((~is_val).sum()),
        "n_val": int(is_val.sum()),
        "n_test": len(test_ids),
        "n_fit_rows": n_fit_rows,  # n_train x crops per clip with train_on_crops
        "inputs": inputs,
        "dim": int(X[0].shape[-1]),
        "variants": sorted(test_pred),
        "fit_seconds": round(fit_seconds, 3),
        "head": head.describe(),
        **(meta or {}),
    }
    if settings is not None:
        info["pseudo_labels"] = pseudo_info
    write_meta(preds_out, **info)
    log.info(
        "fold %s: trained on %d rows, validated on %d in %.2fs",
        "all" if fold is None else fold,
        info["n_train"],
        info["n_val"],
        fit_seconds,
    )
    return info


def nested_fold_average(
    head_params: dict,
    task: TaskSpec,
    seed: int,
    head_name: str | None,
    X,
    y: np.ndarray,
    folds: np.ndarray,
    groups: np.ndarray | None,
    fold: int,
    X_crops: np.ndarray | None = None,
    X_test=None,
    test_ids: list[str] | None = None,
    pseudo_settings: dict | None = None,
) -> dict[str, np.ndarray]:
    """Predictions for ``fold``'s rows averaged over inner models, each trained on the outer
    training rows minus one more fold: what fold-averaging would give, next to this fold's own
    model (a refit on all the outer training rows), fitted on the same rows (per crop with
    ``X_crops``). Empty with fewer than three folds. With ``pseudo_settings`` each inner model
    also teaches an inner student (``{variant}+pl``)."""
    others = [k for k in np.unique(folds) if k != fold]
    if len(others) < 2:
        return {}
    is_val = folds == fold
    total: dict[str, np.ndarray] = {}
    for inner in others:
        rows = (folds != fold) & (folds != inner)
        head = build_head(head_params, task, seed, name=head_name)
        fit_rows = training_rows(X, X_crops, y, groups, rows)
        fit_head(head, *fit_rows)
        preds = head.predict(take(X, is_val))
        if pseudo_settings is not None:
            student = student_round(
                head_params, task, seed, head_name, *fit_rows, take(X, is_val), X_test, test_ids, head, pseudo_settings
            )
            preds.update(student[1])
        del fit_rows
        for variant, P in preds.items():
            total[variant] = total.get(variant, 0) + np.asarray(P, dtype=np.float64) / len(others)
    return total
