"""The prepare step: read the tables, infer the task, make folds and targets (audio paths: audiofold.clips)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .auto_groups import usable
from .errors import DataError
from .folds import duplicate_sets, make_folds, merge_groups
from .io import save_npz, write_csv, write_json, write_meta
from .tables import check_unique_ids, id_column_values, raw_column, read_data_tables
from .tasks import task_from_config

log = logging.getLogger(__name__)


def prepare(
    config: dict,
    out_dir: str | Path,
    skipped: set[str] | frozenset[str] = frozenset(),
    identical: list[list[str]] | None = None,
    auto_groups: tuple[dict[str, str], dict] | None = None,
) -> dict:
    """Write ``task.json``, ``folds.csv`` and ``targets.npz`` under ``out_dir``; return the task summary.

    Folds are made on every training row; the rows in ``skipped`` (bad clips under ``audio.bad_audio:
    skip``, from the validate step) are then left out of the targets. The clip list and audio paths
    are the validate step's (``audiofold.clips``): nothing here decides what is embedded.

    ``identical`` (sets of training ids whose audio files have the same content, from the validate
    step's hashes) lets ``cv.group_duplicates`` (default true) put each set into one fold group, merged
    with ``data.group_column``'s groups; predefined folds are kept, with a warning where a set
    straddles them.

    ``auto_groups`` ({training id: pseudo-group}, the auto_groups step's summary; given only without
    ``data.group_column`` and ``data.fold_column``) makes the fold groups from clusters of the clips'
    embeddings, unless they cannot make ``cv.n_folds`` folds (``auto_groups.usable``); task.json's
    ``auto_groups`` says how many were found and whether the folds use them.
    """
    out_dir = Path(out_dir)
    data, cv = config["data"], config.get("cv", {})
    train, test, sample = read_data_tables(data)
    spec, notes = task_from_config(train, test, sample, config)
    for line in notes:
        log.info("inferred %s", line)

    train_ids = id_column_values(train, spec.id_column, data["train_csv"])
    check_unique_ids(train_ids, data["train_csv"])
    y = spec.encode_targets(train, source=data["train_csv"])

    groups = None
    if data.get("group_column"):
        groups = _column(train, data["group_column"], data["train_csv"], "data.group_column")
    predefined = None
    if data.get("fold_column"):
        predefined = _column(train, data["fold_column"], data["train_csv"], "data.fold_column")
    auto_info, groups_from = None, "data.group_column"
    if auto_groups is not None and groups is None and predefined is None:
        groups, auto_info = _pseudo_groups(train_ids, *auto_groups, cv.get("n_folds", 5))
        if groups is not None:
            groups_from = "cv.auto_groups (clusters of the clips' embeddings)"
    set_of_row = _identical_set_per_row(train_ids, identical or [])
    dup_sets = duplicate_sets(set_of_row)
    merged = 0
    if dup_sets and cv.get("group_duplicates", True) and predefined is None:
        groups, merged = _groups_with_duplicates(train_ids, groups, set_of_row, dup_sets)
        if merged:
            groups_from = (
                f"{groups_from} merged with identical clips (cv.group_duplicates)"
                if data.get("group_column") or auto_info and auto_info["used"]
                else "cv.group_duplicates (each clip a group, identical clips one)"
            )
    folds, scheme = make_folds(
        y,
        spec,
        cv.get("n_folds", 5),
        config.get("seed", 42),
        groups=groups,
        predefined=predefined,
        n_bins=cv.get("n_bins", 10),
        groups_from=groups_from,
    )
    if auto_info and auto_info["used"]:
        scheme += f"; {auto_info['n_groups']} pseudo-groups (cv.auto_groups)"
    if merged:
        scheme += f"; {merged} set(s) of identical clips kept in one fold (cv.group_duplicates)"
    n_folds = int(folds.max()) + 1
    if n_folds != cv.get("n_folds", 5):
        raise DataError(
            f"data.fold_column gives {n_folds} folds but cv.n_folds is {cv.get('n_folds', 5)}; make them agree."
        )
    log.info("folds: %s", scheme)

    split_sets = [ix for ix in dup_sets if len(set(folds[ix])) > 1]
    if split_sets:
        why = (
            "data.fold_column is used as given"
            if predefined is not None
            else "cv.group_duplicates is false; set it to true to keep them in one fold"
        )
        log.warning(
            "%d set(s) of identical training clips (the same file content) lie in more than one fold (%s), "
            "so OOF scores may overstate: e.g. %s",
            len(split_sets),
            why,
            "; ".join(", ".join(repr(train_ids[i]) for i in ix[:4]) for ix in split_sets[:5]),
        )

    test_table = test if test is not None else sample
    n_test = len(test_table) if test_table is not None else 0
    fold_table = pd.DataFrame({"id": train_ids, "fold": folds})
    if groups is not None:
        fold_table["group"] = groups

    summary = {
        "task": spec.to_dict(),
        "inferred": notes,
        "fold_scheme": scheme,
        "n_train": len(train_ids),
        "n_test": n_test,
        "n_folds": n_folds,
        "n_skipped": len(set(skipped) & set(train_ids)),
    }
    if auto_info is not None:
        summary["auto_groups"] = auto_info
    if identical is not None:
        summary["duplicates"] = {
            "exact_sets": len(dup_sets),
            "exact_clips": int(sum(len(ix) for ix in dup_sets)),
            "merged_sets": merged,
            "split_sets": len(split_sets),
        }
    write_json(out_dir / "task.json", summary)
    write_csv(out_dir / "folds.csv", fold_table)
    write_meta(out_dir / "folds.csv", scheme=scheme, n_rows=len(fold_table), seed=config.get("seed", 42))
    targets = {"ids": np.asarray(train_ids, dtype=str), "y": y, "fold": folds}
    if groups is not None:  # heads that search hyperparameters by inner CV keep groups together too
        targets["group"] = np.asarray([str(g) for g in groups], dtype=str)
    targets = drop_skipped(targets, set(skipped))
    save_npz(out_dir / "targets.npz", **targets)
    return summary


def _pseudo_groups(
    ids: list[str], group_of: dict[str, str], found: dict, n_folds: int
) -> tuple[np.ndarray | None, dict]:
    """(fold groups from the auto_groups step's clusters, or None where they cannot make the folds; what
    task.json and the report say about them). A clip the step did not embed (skipped audio) is its own group."""
    groups = np.asarray([group_of.get(i, f"clip:{i}") for i in ids], dtype=object)
    why_not = usable(groups, n_folds)
    info = {
        **found,
        "n_groups": int(len(pd.unique(groups))),
        "used": why_not is None,
        "why": (
            f"no data.group_column: {found['n_clips']} training clips clustered on {found['backbone']} embeddings "
            f"(cosine threshold {found['threshold']:g}) into {found['n_groups']} pseudo-groups (likely speakers or "
            "sources), each kept inside one fold"
            if why_not is None
            else f"pseudo-groups not used: {why_not}; folds are not grouped"
        ),
    }
    (log.info if why_not is None else log.warning)("auto groups: %s", info["why"])
    return (groups if why_not is None else None), info


def _identical_set_per_row(ids: list[str], identical: list[list[str]]) -> np.ndarray:
    """Per training row, the index (as text) of its set of identical clips, empty for rows in none."""
    where = {clip_id: str(k) for k, members in enumerate(identical) for clip_id in members}
    return np.asarray([where.get(i, "") for i in ids], dtype=object)


def _groups_with_duplicates(
    ids: list[str], groups: np.ndarray | None, set_of_row: np.ndarray, sets: list[np.ndarray]
) -> tuple[np.ndarray | None, int]:
    """(fold groups with identical clips joined, number of duplicate sets that joined two or more groups).

    Without ``data.group_column`` every clip is its own group. A merged group is named after its first
    row's group (or id), so untouched groups keep their names; with nothing to merge the groups are
    returned unchanged (and without user groups, none), so data without duplicates gets the same folds.
    """
    before = groups if groups is not None else np.asarray(ids, dtype=object)
    merged = sum(len(pd.unique(before[ix])) > 1 for ix in sets)
    if not merged:
        return groups, 0
    component = merge_groups([set_of_row, groups])
    first_row = pd.Series(np.arange(len(component))).groupby(component).first().to_numpy()
    return before[first_row][component], int(merged)


def drop_skipped(targets: dict[str, np.ndarray], skipped: set[str]) -> dict[str, np.ndarray]:
    """Targets without the training rows the bad-audio policy skipped; no fold may end up empty."""
    ids = np.asarray([str(i) for i in targets["ids"]])
    keep = ~np.isin(ids, list(skipped))
    folds = targets["fold"]
    for k in np.unique(folds):
        if not keep[folds == k].any():
            raise DataError(f"audio.bad_audio=skip drops every row of fold {int(k)}; fix the audio files instead.")
    if keep.sum() == 0:
        raise DataError("audio.bad_audio=skip drops every training row; fix the audio files.")
    return {k: v[keep] for k, v in targets.items()}


def _column(df: pd.DataFrame, col: str, where: str, key: str) -> np.ndarray:
    if col not in df.columns:
        raise DataError(f"{key} {col!r} is not a column of {where} (columns: {list(df.columns)}).")
    return np.asarray(raw_column(df, col), dtype=object)
