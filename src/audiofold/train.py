"""Train one head on one backbone's embeddings for one fold; predict its validation rows and the test set."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import joblib
import numpy as np

from .errors import DataError
from .heads import build_head
from .io import atomic_path, load_npz, save_npz, write_meta
from .tasks import TaskSpec

log = logging.getLogger(__name__)


def load_embeddings(paths: list[str | Path]) -> tuple[list[str], np.ndarray]:
    """Concatenate embedding shards: (ids, X)."""
    ids: list[str] = []
    blocks = []
    for p in paths:
        shard = load_npz(p)
        ids += [str(i) for i in shard["ids"]]
        blocks.append(shard["X"])
    return ids, np.concatenate(blocks).astype(np.float32, copy=False)


def align(ids: list[str], X: np.ndarray, wanted: list[str], what: str) -> np.ndarray:
    """Rows of X in the order of ``wanted``."""
    index = {i: r for r, i in enumerate(ids)}
    missing = [w for w in wanted if w not in index]
    if missing:
        raise DataError(f"{what}: no embedding for {len(missing)} id(s), e.g. {missing[:5]}; rerun the embed step.")
    return X[[index[w] for w in wanted]]


def train_fold(
    *,
    train_shards: list[str | Path],
    test_shards: list[str | Path],
    targets_path: str | Path,
    task: TaskSpec,
    fold: int,
    head_params: dict,
    head_name: str | None = None,
    seed: int,
    model_out: str | Path,
    preds_out: str | Path,
    meta: dict | None = None,
) -> dict:
    targets = load_npz(targets_path)
    all_ids = [str(i) for i in targets["ids"]]
    y, folds = targets["y"], targets["fold"]
    emb_ids, X_all = load_embeddings(train_shards)
    X = align(emb_ids, X_all, all_ids, "training clips")
    test_ids, X_test = load_embeddings(test_shards)

    is_val = folds == fold
    if not is_val.any():
        raise DataError(f"fold {fold} has no rows; check cv.n_folds / data.fold_column.")
    head = build_head(head_params, task, seed, name=head_name)
    started = time.perf_counter()
    head.fit(X[~is_val], y[~is_val])
    fit_seconds = time.perf_counter() - started
    val_pred = head.predict(X[is_val])
    test_pred = head.predict(X_test)

    with atomic_path(model_out) as tmp:
        joblib.dump(head, tmp)
    arrays = {"val_ids": np.asarray(all_ids, dtype=str)[is_val], "test_ids": np.asarray(test_ids, dtype=str)}
    for variant, P in val_pred.items():
        arrays[f"val__{variant}"] = np.asarray(P, dtype=np.float32)
        arrays[f"test__{variant}"] = np.asarray(test_pred[variant], dtype=np.float32)
    save_npz(preds_out, **arrays)
    info = {"fold": fold, "n_train": int((~is_val).sum()), "n_val": int(is_val.sum()), "n_test": len(test_ids),
            "dim": int(X.shape[1]), "variants": sorted(val_pred), "fit_seconds": round(fit_seconds, 3),
            "head": head.describe(), **(meta or {})}
    write_meta(preds_out, **info)
    log.info("fold %d: trained on %d rows, validated on %d in %.2fs", fold, info["n_train"], info["n_val"], fit_seconds)
    return info
