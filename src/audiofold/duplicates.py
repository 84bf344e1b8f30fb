"""Duplicate clips: identical files (content hash) and near duplicates (embedding similarity).

A clip copied into two folds, or into training and test, lets a head score the copy it has seen:
the out-of-fold score then overstates what the submission will score (the classic leak of FSD and
BirdCLEF data). Two guards:

- exact duplicates (``audiofold.hashes``): the ``hashes`` step records each clip's content hash (blake2b of the file's
  bytes, the embedding cache's ``file_digest``), which ``validate`` copies into ``clips.csv``;
  ``prepare`` puts identical training clips into one fold group (``cv.group_duplicates``);
- near duplicates (a re-encoded, trimmed or lightly noised copy): the ``duplicates`` step compares
  one backbone's pooled embeddings, standardised, by cosine similarity, and reports pairs at or
  above ``duplicates.threshold`` that straddle folds or train and test. They are reported and
  warned about, never used to move folds: folds are made before embeddings so that a fold change
  never re-embeds.

Similarities are float32 matrix products over tiles of the upper triangle (``similar_pairs``), so
100k clips need neither an N x N matrix in memory nor N^2 float64 products.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler, normalize

from .embed import load_embeddings
from .folds import duplicate_sets
from .hashes import read_hashes
from .io import read_json, write_csv, write_json

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.995
PAIR_COLUMNS = ["id_a", "id_b", "split_a", "split_b", "fold_a", "fold_b", "similarity", "kind"]
MAX_LISTED = 10  # pairs shown in duplicates.json (and so in metrics.json and the report)


# float32 similarities are within ~1e-6 of float64: candidates within this margin of the threshold are
# re-scored in float64, so the result is float64's
_MARGIN = 1e-4


def similar_pairs(
    A: np.ndarray, B: np.ndarray | None = None, *, threshold: float, working_memory: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine similarity) of every row pair at or above ``threshold``: rows of A against rows
    of B, or, without B, pairs of A's rows with i < j; sorted by i, then j.

    Computed as float32 matrix products over tiles of ``working_memory`` MiB (64 when None), only
    the upper triangle without B, so 100k clips need neither an N x N matrix nor float64 products;
    the pairs found are re-scored in float64.
    """
    within = B is None
    # unit rows (zero rows stay zero, similar to nothing)
    U64 = normalize(np.asarray(A, dtype=np.float64))
    V64 = U64 if within else normalize(np.asarray(B, dtype=np.float64))
    U, V = U64.astype(np.float32), V64.astype(np.float32)
    n, m = len(U), len(V)
    if not n or not m:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    cells = max(1, (working_memory or 64) * 2**20 // 4)  # float32 similarities per tile
    row_block = max(1, min(n, 1024, cells))
    col_block = max(1, cells // row_block)
    found_i, found_j = [], []
    for i0 in range(0, n, row_block):
        i1 = min(n, i0 + row_block)
        for j0 in range(i0 if within else 0, m, col_block):
            j1 = min(m, j0 + col_block)
            rows, cols = np.nonzero(U[i0:i1] @ V[j0:j1].T >= threshold - _MARGIN)
            rows, cols = rows + i0, cols + j0
            if within:
                keep = cols > rows
                rows, cols = rows[keep], cols[keep]
            found_i.append(rows)
            found_j.append(cols)
    i, j = np.concatenate(found_i).astype(np.int64), np.concatenate(found_j).astype(np.int64)
    s = np.clip(np.einsum("kd,kd->k", U64[i], V64[j]), -1.0, 1.0)
    keep = s >= threshold
    i, j, s = i[keep], j[keep], s[keep]
    order = np.lexsort((j, i))
    return i[order], j[order], s[order]


def find_duplicates(
    train_ids: list[str],
    X_train: np.ndarray,
    train_folds: np.ndarray,
    test_ids: list[str],
    X_test: np.ndarray,
    *,
    train_hashes: dict[str, str],
    test_hashes: dict[str, str],
    folds: dict[str, int],
    threshold: float = DEFAULT_THRESHOLD,
    working_memory: int | None = None,
) -> pd.DataFrame:
    """Duplicate pairs that straddle folds (training clips) or train and test, as a table (PAIR_COLUMNS).

    ``kind`` is ``exact`` for identical files (every training clip in ``folds`` and every test clip in
    ``test_hashes`` is checked, embedded or not; similarity 1.0) and ``near`` for embeddings with
    cosine similarity >= ``threshold`` after standardising each dimension over train and test
    together. ``X_train`` rows are ``train_ids`` in ``train_folds``; rows to leave out of the
    embedding comparison (zero-filled clips are all silence) are simply not passed.
    """
    rows = []
    # exact: identical content hashes
    train_by_hash: dict[str, list[str]] = {}
    for clip_id in folds:
        h = train_hashes.get(clip_id, "")
        if h:
            train_by_hash.setdefault(h, []).append(clip_id)
    for members in train_by_hash.values():
        for a_index, a in enumerate(members):
            for b in members[a_index + 1 :]:
                if folds[a] != folds[b]:
                    rows.append((a, b, "train", "train", folds[a], folds[b], 1.0, "exact"))
    for test_id, h in test_hashes.items():
        for a in train_by_hash.get(h, []) if h else []:
            rows.append((a, test_id, "train", "test", folds[a], None, 1.0, "exact"))

    # near: cosine similarity of standardised embeddings
    if len(X_train) and len(X_train) + len(X_test) > 1:
        scaler = StandardScaler().fit(np.vstack([X_train, X_test]).astype(np.float64))
        Z_train = scaler.transform(np.asarray(X_train, dtype=np.float64))
        i, j, s = similar_pairs(Z_train, threshold=threshold, working_memory=working_memory)
        for a, b, sim in zip(i, j, s):
            ida, idb = train_ids[a], train_ids[b]
            if train_folds[a] != train_folds[b] and not _same_content(train_hashes, ida, train_hashes, idb):
                rows.append((ida, idb, "train", "train", int(train_folds[a]), int(train_folds[b]), sim, "near"))
        if len(X_test):
            Z_test = scaler.transform(np.asarray(X_test, dtype=np.float64))
            i, j, s = similar_pairs(Z_train, Z_test, threshold=threshold, working_memory=working_memory)
            for a, b, sim in zip(i, j, s):
                ida, idb = train_ids[a], test_ids[b]
                if not _same_content(train_hashes, ida, test_hashes, idb):
                    rows.append((ida, idb, "train", "test", int(train_folds[a]), None, sim, "near"))

    table = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    table["fold_a"] = table["fold_a"].astype("Int64")
    table["fold_b"] = table["fold_b"].astype("Int64")
    table["similarity"] = table["similarity"].astype(float).round(6)
    return table.sort_values(["similarity", "id_a", "id_b"], ascending=[False, True, True], ignore_index=True)


def _same_content(hashes_a: dict, id_a: str, hashes_b: dict, id_b: str) -> bool:
    h = hashes_a.get(id_a, "")
    return bool(h) and h == hashes_b.get(id_b, "")


def summarise_pairs(
    pairs: pd.DataFrame,
    *,
    backbone: str,
    threshold: float,
    exact_sets: int,
    merged_sets: int,
    split_sets: int,
    n_train: int,
    n_test: int,
) -> dict:
    """The counts metrics.json and the report show, and the most similar pairs."""
    across = pairs["split_b"] == "train"
    near = pairs["kind"] == "near"
    listed = pairs.head(MAX_LISTED).astype(object).where(pairs.head(MAX_LISTED).notna(), None)
    return {
        "backbone": backbone,
        "threshold": threshold,
        "n_train": n_train,
        "n_test": n_test,
        "exact_sets": exact_sets,
        "exact_sets_merged": merged_sets,
        "exact_sets_split": split_sets,
        "exact_pairs_across_folds": int((~near & across).sum()),
        "exact_pairs_train_test": int((~near & ~across).sum()),
        "near_pairs_across_folds": int((near & across).sum()),
        "near_pairs_train_test": int((near & ~across).sum()),
        "top_pairs": listed.to_dict(orient="records"),
    }


def duplicate_report(
    train_shards: list[str | Path],
    test_shards: list[str | Path],
    *,
    clips_path: str | Path,
    folds_path: str | Path,
    task_path: str | Path,
    backbone: str,
    threshold: float,
    pairs_out: str | Path,
    summary_out: str | Path,
) -> dict:
    """File-level entry point of the ``duplicates`` rule: ``duplicates.csv`` (the pairs) and
    ``duplicates.json`` (counts, copied into metrics.json); warns when any pair straddles folds or
    train and test."""
    clips = pd.read_csv(clips_path, dtype=str, keep_default_na=False)
    fold_table = pd.read_csv(folds_path, dtype={"id": str}, keep_default_na=False)
    folds = dict(zip(fold_table["id"], fold_table["fold"].astype(int)))
    train_hashes, test_hashes = read_hashes(clips_path, "train"), read_hashes(clips_path, "test")
    # zero-filled clips are all embedded from silence: alike, but not duplicates of anything
    decoded = clips[clips["action"] == "decode"]
    train_ids = [i for i in decoded.loc[decoded["split"] == "train", "id"] if i in folds]
    test_ids = list(decoded.loc[decoded["split"] == "test", "id"])
    train_ids, X_train = load_embeddings(train_shards, wanted=train_ids, what="training clips")
    test_ids, X_test = load_embeddings(test_shards, wanted=test_ids, what="test clips")
    pairs = find_duplicates(
        train_ids,
        X_train,
        np.asarray([folds[i] for i in train_ids]),
        test_ids,
        X_test,
        train_hashes=train_hashes,
        test_hashes=test_hashes,
        folds=folds,
        threshold=threshold,
    )
    fold_ids = list(folds)
    sets = duplicate_sets(np.asarray([train_hashes.get(i, "") for i in fold_ids], dtype=object))
    split = sum(len({folds[fold_ids[k]] for k in ix}) > 1 for ix in sets)
    merged = (read_json(task_path).get("duplicates") or {}).get("merged_sets", 0)
    summary = summarise_pairs(
        pairs,
        backbone=backbone,
        threshold=threshold,
        exact_sets=len(sets),
        merged_sets=merged,
        split_sets=split,
        n_train=len(train_ids),
        n_test=len(test_ids),
    )
    write_csv(pairs_out, pairs)
    write_json(summary_out, summary)
    for line in summary_lines(summary):
        (log.warning if line.startswith("WARNING") else log.info)("%s", line.removeprefix("WARNING: "))
    return summary


def summary_lines(summary: dict) -> list[str]:
    """The rule log's account; lines about leaks start with WARNING."""
    lines = [
        f"{summary['exact_sets']} set(s) of identical training clips, {summary['exact_sets_merged']} kept in one "
        f"fold by cv.group_duplicates; near duplicates by {summary['backbone']} embeddings at cosine >= "
        f"{summary['threshold']} (standardised)"
    ]
    across = summary["exact_pairs_across_folds"] + summary["near_pairs_across_folds"]
    train_test = summary["exact_pairs_train_test"] + summary["near_pairs_train_test"]
    if across:
        lines.append(
            f"WARNING: {across} duplicate pair(s) of training clips lie in different folds "
            f"({summary['exact_pairs_across_folds']} identical files, {summary['near_pairs_across_folds']} near): "
            "a head scores a copy of what it was trained on, so OOF scores may overstate. Near duplicates do not "
            "move folds; put them in one group through data.group_column (see results/validation/duplicates.csv)."
        )
    if train_test:
        lines.append(
            f"WARNING: {train_test} training clip(s) duplicate test clips ({summary['exact_pairs_train_test']} "
            f"identical files, {summary['near_pairs_train_test']} near): see results/validation/duplicates.csv."
        )
    if not across and not train_test:
        lines.append("no duplicate pair across folds or between train and test")
    return lines
