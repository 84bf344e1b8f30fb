"""The ``hashes`` step: the content hash of every clip's file, the guard against exact duplicates.

A clip copied into two folds, or into training and test, lets a head score the copy it has seen. Each
clip's hash is blake2b of the file's bytes (the embedding cache's ``file_digest``, remembered there);
``validate`` copies it into ``clips.csv`` and ``prepare`` puts identical training clips into one fold
group (``cv.group_duplicates``). Near duplicates are the ``duplicates`` step's (``audiofold.duplicates``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .cache import FileMemo, file_digest
from .clips import file_state, list_clips
from .folds import duplicate_sets
from .io import write_csv

log = logging.getLogger(__name__)


def content_hashes(paths: list[str], cache_dir: str | Path | None, progress: bool = True) -> list[str]:
    """Content hash of each file (the embedding cache's ``audiofold.cache.file_digest``, remembered
    in one table under ``cache_dir/files``, so the embed step never reads a file twice to hash it); an empty
    string for a path without a readable file (the validate step applies the bad-audio policy)."""
    memo = None if cache_dir is None else FileMemo(cache_dir)
    hashes = []
    for path in tqdm(paths, desc="hash", unit="clip", disable=not progress):
        try:
            hashes.append(file_digest(path, memo) if path else "")
        except OSError:  # a dangling symlink, a loop, an unreadable file
            hashes.append("")
    if memo is not None:
        memo.flush()  # one table of the file states hashed here: the cache grows by jobs, not files
    return hashes


def hash_clips(data: dict, cache_dir: str | Path | None, out: str | Path, progress: bool = True) -> pd.DataFrame:
    """The ``hashes`` step: ``id, split, path, hash, size, mtime_ns`` of every clip the tables name ->
    ``out`` (csv). ``size`` and ``mtime_ns`` are the file's state, taken before it is hashed, so a file
    edited meanwhile never looks unchanged to a job that trusts the hash (``clips.read_chunk_manifest``).

    Lenient about missing and unreadable files (empty hash): the validate step applies the bad-audio
    policy to them.
    """
    clips = list_clips(data, missing_ok=True)[["id", "split", "path"]].copy()
    clips["size"], clips["mtime_ns"] = _states(clips["path"].tolist())
    clips["hash"] = content_hashes(clips["path"].tolist(), cache_dir, progress=progress)
    clips = clips[["id", "split", "path", "hash", "size", "mtime_ns"]]
    write_csv(out, clips)
    log.info(
        "hashed %d clip(s); %d set(s) of training clips with identical content",
        len(clips),
        len(identical_sets(clips)),
    )
    return clips


def _states(paths: list[str]) -> tuple[list[str], list[str]]:
    states = [file_state(p) if p else ("", "") for p in paths]
    return [s for s, _ in states], [m for _, m in states]


def identical_sets(clips: pd.DataFrame, split: str = "train") -> list[list[str]]:
    """Ids of one split's clips with identical content (two or more per set), from the clip table's
    ``hash`` column (``hashes.csv`` or ``clips.csv``); sorted, so the list is stable."""
    rows = clips[clips["split"] == split]
    sets = [sorted(rows["id"].iloc[ix].tolist()) for ix in duplicate_sets(rows["hash"].to_numpy(dtype=object))]
    return sorted(sets)


def read_hashes(path: str | Path, split: str = "train") -> dict[str, str]:
    """id -> content hash of one split's clips, from ``validation/hashes.csv`` or ``clips.csv``."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    rows = table[table["split"] == split]
    return dict(zip(rows["id"], rows["hash"]))
