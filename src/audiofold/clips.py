"""The clip list: every train/test clip with its audio file and the chunk (shard) that embeds it.

Chunks are independent of folds: a clip's chunk depends only on its split, its id and the number of
chunks of its split, through a jump consistent hash (Lamping & Veach 2014). So folds, seed, labels
and groups never move a clip, and when the chunk count grows from C to C+1 the only clips that move
are the ~1/(C+1) that go to the new chunk (none moves between old chunks); the per-clip embedding
cache (audiofold.cache) then serves every moved clip without running the model again.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError
from .io import meta_path, write_text_if_changed
from .tables import check_unique_ids, id_column_values, raw_column, read_data_tables
from .tasks import infer_id_column

# shard_clips "auto": about 8 chunks so small data still runs in parallel, at least 32 clips per job
# and at most 4096. A job's memory does not grow with its chunk (embed_clips decodes 32 clips at a
# time), but its start-up is fixed: each job starts Snakemake and Python again (~5 s of CPU here), so
# at 100k clips 1024-clip chunks made 108 embed jobs per backbone, a fifth of the run's CPU
# (benchmarks/results/scale.md). A killed job loses at most embed.CHECKPOINT_CLIPS clips of work.
AUTO_CHUNKS, AUTO_MIN_CLIPS, AUTO_MAX_CLIPS = 8, 32, 4096
SPLITS = ("train", "test")

log = logging.getLogger(__name__)


def jump_hash(key: int, n_buckets: int) -> int:
    """Jump consistent hash: bucket of a 64-bit key in 0..n-1; growing n only moves keys to the new bucket."""
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be at least 1, got {n_buckets}")
    b, j = -1, 0
    while j < n_buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def clip_key(split: str, clip_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{split}\0{clip_id}".encode(), digest_size=8).digest(), "little")


def resolve_shard_clips(setting: int | str, n_clips: int) -> int:
    """``audio.shard_clips`` as configured -> clips per chunk (``auto``: see AUTO_*)."""
    if setting == "auto":
        return int(min(AUTO_MAX_CLIPS, max(AUTO_MIN_CLIPS, math.ceil(n_clips / AUTO_CHUNKS))))
    return int(setting)


def assign_chunks(split: str, ids: list[str], shard_clips: int) -> np.ndarray:
    """Chunk index per clip: ceil(n / shard_clips) chunks of one split, each clip placed by its id alone."""
    n_chunks = max(1, math.ceil(len(ids) / shard_clips))
    return np.array([jump_hash(clip_key(split, i), n_chunks) for i in ids], dtype=np.int64)


def list_clips(data: dict, shard_clips: int | str = "auto", missing_ok: bool = False) -> pd.DataFrame:
    """Columns ``id, split, path, chunk`` (chunk = ``train3``, ``test0``, ...), train rows then test rows.

    Reads only the id (and path) columns' worth of the tables: labels, groups and folds play no part.
    """
    train, test, sample = read_data_tables(data)
    if test is None and sample is None:
        raise DataError("no test clips: set data.test_csv or data.sample_submission.")
    id_col = data.get("id_column")
    if id_col is None:
        id_col, _ = infer_id_column(train, test)
    elif id_col not in train.columns:
        raise DataError(f"data.id_column {id_col!r} is not a column of the training table {list(train.columns)}.")
    train_ids = id_column_values(train, id_col, data["train_csv"])
    check_unique_ids(train_ids, data["train_csv"])
    test_table, test_where = (test, data["test_csv"]) if test is not None else (sample, data["sample_submission"])
    test_ids = id_column_values(
        test_table, id_col if id_col in test_table.columns else test_table.columns[0], test_where
    )
    check_unique_ids(test_ids, test_where)
    if test is not None and sample is not None:
        sample_ids = id_column_values(
            sample, id_col if id_col in sample.columns else sample.columns[0], data["sample_submission"]
        )
        check_same_ids(test_ids, sample_ids, data["test_csv"], data["sample_submission"])

    ext = data.get("audio_extensions", ["wav", "flac", "ogg", "mp3", "m4a"])
    dirs = {"train": Path(data["train_audio_dir"]), "test": Path(data.get("test_audio_dir") or data["train_audio_dir"])}
    path_col = data.get("path_column")
    rels = {
        "train": raw_column(train, path_col) if path_col else train_ids,
        "test": raw_column(test, path_col)
        if (path_col and test is not None and path_col in test.columns)
        else test_ids,
    }
    wheres = {"train": data["train_csv"], "test": test_where}
    per_clip = resolve_shard_clips(shard_clips, len(train_ids) + len(test_ids))
    folders = {"train": AudioFolder(dirs["train"], ext)}
    folders["test"] = folders["train"] if dirs["test"] == dirs["train"] else AudioFolder(dirs["test"], ext)
    parts = []
    for split, ids in (("train", train_ids), ("test", test_ids)):
        paths = [
            folders[split].resolve(rel, f"{wheres[split]}, row {i + 2}", missing_ok)
            for i, rel in enumerate(rels[split])
        ]
        chunk = assign_chunks(split, ids, per_clip)
        parts.append(
            pd.DataFrame(
                {
                    "id": ids,
                    "split": split,
                    "path": ["" if p is None else str(p) for p in paths],
                    "chunk": [f"{split}{c}" for c in chunk],
                }
            )
        )
    for folder in {id(f): f for f in folders.values()}.values():
        folder.warn_several()
    return pd.concat(parts, ignore_index=True)


def read_clips(path: str | Path) -> pd.DataFrame:
    """The validated clip table (``validation/clips.csv``) with every column as text."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def chunk_names(clips: pd.DataFrame, split: str) -> list[str]:
    """Chunks of one split in index order (``train0``, ``train1``, ...); a chunk may be empty only if
    no clip hashed to it, and then it is left out."""
    names = clips.loc[clips["split"] == split, "chunk"].unique().tolist()
    return sorted(names, key=lambda s: int(s[len(split) :]))


# One manifest per chunk (validation/chunks/{chunk}.tsv): the embed and audio_store jobs' one data
# input instead of the chunk's audio files, so Snakemake's scheduler stats O(chunks) files, not O(clips).
# size and mtime_ns are the file's state when the hashes step hashed it: a job trusts ``hash`` only
# while the file still has that state. Any edit changes the manifest, which reruns exactly its chunk.
MANIFEST_COLUMNS = ["id", "path", "action", "hash", "size", "mtime_ns"]


def manifest_path(folder: str | Path, chunk: str) -> Path:
    return Path(folder) / f"{chunk}.tsv"


def write_chunk_manifests(clips: pd.DataFrame, folder: str | Path) -> list[str]:
    """One manifest per chunk of ``clips`` (columns ``chunk`` and ``MANIFEST_COLUMNS``), in clip-table
    order, each written only when its content changed (an unchanged chunk's keeps its mtime); manifests
    of chunks that no longer exist are removed. Returns the chunks written."""
    folder = Path(folder)
    written = []
    for chunk, rows in clips.groupby("chunk", sort=False):
        text = rows[MANIFEST_COLUMNS].to_csv(sep="\t", index=False, lineterminator="\n")
        path = manifest_path(folder, chunk)
        before = _read_text(path)
        if write_text_if_changed(path, text):
            written.append(chunk)
            if before is not None:  # parsed only for a changed chunk
                _say_what_changed(chunk, _manifest_rows(before), rows[MANIFEST_COLUMNS])
        # its sidecar, like every artifact's: what made it and what it holds (unchanged with the manifest)
        meta = {
            "step": "validate",
            "chunk": chunk,
            "rows": len(rows),
            "columns": MANIFEST_COLUMNS,
            "bytes": len(text.encode("utf-8")),
        }
        write_text_if_changed(meta_path(path), json.dumps(meta, indent=2) + "\n")
    current = set(clips["chunk"])
    for old in folder.glob("*.tsv"):
        if old.stem not in current:
            old.unlink(missing_ok=True)
            meta_path(old).unlink(missing_ok=True)
    return written


def _read_text(path: Path) -> str | None:
    """A manifest's text as written before (None when there is none or it cannot be read)."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _manifest_rows(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)


def _say_what_changed(chunk: str, before: pd.DataFrame, after: pd.DataFrame, shown: int = 5) -> None:
    """Log which clips made a chunk's manifest change (and so rerun its embed jobs)."""
    old = {r[0]: tuple(r[1:]) for r in before.astype(str).itertuples(index=False)}
    new = {r[0]: tuple(r[1:]) for r in after.astype(str).itertuples(index=False)}
    parts = []
    for what, ids in (
        ("added", sorted(new.keys() - old.keys())),
        ("removed", sorted(old.keys() - new.keys())),
        ("changed", sorted(i for i in new.keys() & old.keys() if new[i] != old[i])),
    ):
        if ids:
            parts.append(f"{len(ids)} {what} ({', '.join(ids[:shown])}{', ...' if len(ids) > shown else ''})")
    log.info("chunk %s: %s; its embed jobs rerun", chunk, "; ".join(parts) or "clip order changed")


def read_chunk_manifest(path: str | Path) -> list[tuple[str, str, str]]:
    """(id, path, action) of one chunk's clips, in clip-table order."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return list(zip(table["id"], table["path"], table["action"]))


def manifest_digests(path: str | Path) -> list[str | None]:
    """Each clip's content hash from its chunk's manifest where its file still has the state it was
    hashed in; None otherwise (edited since: hash it again), and for clips with no file to decode."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    digests: list[str | None] = []
    for clip_path, action, digest, size, mtime in zip(
        table["path"], table["action"], table["hash"], table["size"], table["mtime_ns"]
    ):
        known = action == "decode" and digest and file_state(clip_path) == (size, mtime)
        digests.append(digest if known else None)
    changed = sum(d is None for d, a in zip(digests, table["action"]) if a == "decode")
    if changed:
        log.warning("%s: %d clip(s) without a hash or changed since hashed: hashed again", path, changed)
    return digests


def file_state(path: str) -> tuple[str, str]:
    """(size, mtime_ns) of a file as text, ("", "") when it cannot be read."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return "", ""
    return str(st.st_size), str(st.st_mtime_ns)


class AudioFolder:
    """Finds each clip's file in one audio folder: the id as a relative path, else the id plus each extension.

    Paths that resolve outside the folder (``../x``, absolute ids, symlinks) are always refused. Names
    are compared in Unicode NFC form, so an id typed on one system finds a file named on another
    (macOS stores names decomposed). Ids with several files (``a.wav`` and ``a.flac``) use the first
    extension listed and are collected in ``several`` for one warning.
    """

    def __init__(self, directory: str | Path, extensions: list[str]):
        self.dir = Path(directory)
        self.extensions = [e.lstrip(".") for e in extensions]
        self.several: list[tuple[str, Path, list[Path]]] = []
        self._nfc_names: dict[Path, dict[str, str]] = {}

    def _existing(self, cand: Path) -> Path | None:
        """``cand`` or the file whose name is ``cand``'s in another Unicode normal form."""
        if _file_or_broken_link(cand):
            return cand
        parent = cand.parent
        if parent not in self._nfc_names:
            try:
                self._nfc_names[parent] = {unicodedata.normalize("NFC", n): n for n in os.listdir(parent)}
            except OSError:
                self._nfc_names[parent] = {}
        name = self._nfc_names[parent].get(unicodedata.normalize("NFC", cand.name))
        if name is not None and name != cand.name and _file_or_broken_link(parent / name):
            return parent / name
        return None

    def resolve(self, clip_id: str, where: str, missing_ok: bool = False) -> Path | None:
        """The clip's file; a missing file is an error unless ``missing_ok`` (validate then applies the policy)."""
        candidates = [self.dir / clip_id] + [self.dir / f"{clip_id}.{ext}" for ext in self.extensions]
        found = [p for p in (self._existing(c) for c in candidates) if p is not None]
        for cand in found:
            if not cand.is_file():  # a dangling symlink or a symlink loop
                if missing_ok:
                    return cand  # validate reports it as unreadable and applies the policy
                raise DataError(
                    f"{where}: the file for id {clip_id!r}, {cand}, is a symlink that leads to no file "
                    "(dangling, or a loop). Fix the link, or set audio.bad_audio to skip or zeros."
                )
            resolved = cand.resolve()
            if self.dir.resolve() not in resolved.parents:
                raise DataError(
                    f"{where}: id {clip_id!r} points outside the audio folder {self.dir} ({resolved}); refused."
                )
            if len(found) > 1:
                self.several.append((clip_id, cand, [p for p in found if p != cand]))
            return cand
        if missing_ok:
            return None
        raise DataError(
            f"{where}: no audio file for id {clip_id!r} in {self.dir} (tried {', '.join(c.name for c in candidates)}). "
            "Check data.*_audio_dir, data.path_column and data.audio_extensions."
        )

    def warn_several(self) -> None:
        if self.several:
            shown = "; ".join(
                f"{i!r}: used {used.name}, ignored {', '.join(p.name for p in others)}"
                for i, used, others in self.several[:10]
            )
            log.warning(
                "%d id(s) in %s have several audio files (the first of data.audio_extensions is used): %s%s",
                len(self.several),
                self.dir,
                shown,
                " ..." if len(self.several) > 10 else "",
            )


def _file_or_broken_link(path: Path) -> bool:
    """A file, or a symlink that leads nowhere (dangling or a loop): both are the clip's entry."""
    return path.is_file() or (path.is_symlink() and not path.exists())


def check_same_ids(test_ids: list[str], sample_ids: list[str], test_where: str, sample_where: str) -> None:
    """The test table and the sample submission must name the same clips (order may differ)."""
    only_test = sorted(set(test_ids) - set(sample_ids))
    only_sample = sorted(set(sample_ids) - set(test_ids))
    if only_test or only_sample:
        raise DataError(
            f"{test_where} and {sample_where} name different clips: {len(only_test)} test id(s) missing from the "
            f"sample submission {only_test[:10]}, {len(only_sample)} sample-submission id(s) missing from the test "
            f"table {only_sample[:10]}. Use the matching files, or set data.test_csv: null to take the ids from "
            "the sample submission."
        )
