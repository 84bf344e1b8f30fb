"""Embedding cache shared across runs and projects, stored in packs: O(chunks) files, not O(clips).

An entry is keyed by the content hash of the clip's audio file (blake2b of its bytes) and a hash of
everything else the embedding depends on (backbone config, decode parameters, cache format), so a
changed file or a changed backbone gets a new key and a stale entry is never read. Layout:

    {cache_dir}/emb/{config key}/packs/{pack id}.npz      one embed job's new clips: ``digests`` and
                                                          their arrays, row i = digests[i]
    {cache_dir}/emb/{config key}/packs/{pack id}.idx.npy  the pack's digests, so a reader finds a
                                                          digest without opening every pack
    {cache_dir}/files/{table id}.npz                      file states (path, size, mtime) -> content
                                                          hash, one table per job that hashed files

A pack id and a table id are hashes of what they hold (the sorted digests, the sorted file states),
so two jobs writing the same chunk write the same name with equivalent content, and the atomic rename
(temp file in the same folder + ``os.replace``) loses nothing. No locks: a file, once renamed into
place, is complete; at worst two jobs compute an entry twice. Temp files of other writers are never
removed (``prune`` removes those older than a day). An unreadable pack, index or table is a miss,
logged once with its path; the job that recomputes the clips writes a new pack and removes the bad one.

The per-clip layout of cache format 1 (``emb/{key}/{xx}/{hash}.npz``, ``files/{xx}/{stat key}``) is
ignored, said once per job, and deleted by ``audiofold cache prune``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .io import stable_hash

FORMAT_VERSION = 2
log = logging.getLogger(__name__)

# what a cut-short or overwritten npz / npy raises on reading
UNREADABLE = (OSError, ValueError, EOFError, KeyError, IndexError, zipfile.BadZipFile)
OFFSETS = "__offsets"  # suffix of the offsets array of a variable-length array in a pack
STALE_TEMP_SECONDS = 24 * 3600  # prune removes temp files older than this (writers killed mid-write)
_said: set[str] = set()  # paths already warned about, folders whose old layout was mentioned (once per job)


def _warn_once(path: Path, what: str, exc: BaseException) -> None:
    if str(path) not in _said:
        _said.add(str(path))
        log.warning("embedding cache %s %s is unreadable (%s): a miss, recomputed and replaced", what, path, exc)


def file_digest(path: str | os.PathLike, memo: FileMemo | None = None, chunk: int = 1 << 20) -> str:
    """blake2b of the file's bytes; with ``memo``, remembered per (path, size, mtime_ns)."""
    if memo is not None:
        return memo.digest(path)
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _stat_key(path: Path) -> bytes:
    st = path.stat()
    return (
        hashlib.blake2b(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode(), digest_size=16)
        .hexdigest()
        .encode()
    )


def _ids_hash(keys: Iterable[str | bytes]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for k in sorted(k.encode() if isinstance(k, str) else k for k in keys):
        h.update(k + b"\n")
    return h.hexdigest()


class FileMemo:
    """Content hashes of file states, read once from every table under ``cache_dir/files``; the new
    ones go into one table of this job's on ``flush``."""

    def __init__(self, cache_dir: str | os.PathLike) -> None:
        self.folder = Path(cache_dir) / "files"
        self._known: dict[bytes, bytes] | None = None
        self._new: dict[bytes, bytes] = {}

    def _load(self) -> dict[bytes, bytes]:
        if self._known is None:
            self._known = {}
            old = False
            for entry in _scandir(self.folder):
                if entry.name.endswith(".npz") and not entry.name.startswith("."):
                    try:
                        with np.load(entry.path, allow_pickle=False) as table:
                            self._known.update(zip(table["stat_keys"].tolist(), table["digests"].tolist()))
                    except UNREADABLE as exc:
                        _warn_once(Path(entry.path), "file-hash table", exc)
                old = old or _is_old_bucket(entry)
            if old:
                _say_old_layout(self.folder)
        return self._known

    def digest(self, path: str | os.PathLike) -> str:
        path = Path(path)
        key = _stat_key(path)
        found = self._load().get(key) or self._new.get(key)
        if found is None:
            found = self._new[key] = file_digest(path).encode()
        return found.decode()

    def flush(self) -> Path | None:
        """Write this job's new file states as one table (none when every file was known)."""
        if not self._new:
            return None
        keys = sorted(self._new)
        table = self.folder / f"{_ids_hash(keys)}.npz"
        stat_keys = np.array(keys, dtype="S32")
        digests = np.array([self._new[k] for k in keys], dtype="S40")
        _write(table, lambda fh: np.savez(fh, stat_keys=stat_keys, digests=digests))
        self._load().update(self._new)
        self._new = {}
        return table


def config_key(backbone_config: dict, max_seconds: float | None) -> str:
    """What an embedding depends on besides the audio: backbone options (not batching), decode length."""
    relevant = {k: v for k, v in backbone_config.items() if k not in ("batch_size", "max_padding")}
    return stable_hash({"backbone": relevant, "max_seconds": max_seconds, "format": FORMAT_VERSION}, length=16)


class EmbeddingCache:
    """Clips' arrays by content hash under one config key: ``get_many`` reads the packs holding them,
    ``put_many`` writes one pack."""

    def __init__(self, cache_dir: str | os.PathLike, key: str) -> None:
        self.root = Path(cache_dir)
        self.key = key
        self.packs = self.root / "emb" / key / "packs"
        self.memo = FileMemo(self.root)
        self.hits = 0
        self.misses = 0
        self._index: dict[str, list[str]] | None = None
        self._bad: set[str] = set()  # pack ids found unreadable, replaced by the next put_many

    def digest(self, path: str | os.PathLike) -> str:
        return self.memo.digest(path)

    def _pack(self, pack_id: str) -> Path:
        return self.packs / f"{pack_id}.npz"

    def _index_of(self, pack_id: str) -> Path:
        return self.packs / f"{pack_id}.idx.npy"

    def index(self) -> dict[str, list[str]]:
        """digest -> ids of the packs holding it, from every pack index of this config key (read once)."""
        if self._index is None:
            _check_old_layout(self.root)
            self._index = {}
            for entry in _scandir(self.packs):
                if entry.name.endswith(".idx.npy") and not entry.name.startswith("."):
                    pack_id = entry.name[: -len(".idx.npy")]
                    try:
                        digests = np.load(entry.path, allow_pickle=False).tolist()
                    except UNREADABLE as exc:
                        _warn_once(Path(entry.path), "pack index", exc)
                        self._bad.add(pack_id)
                        continue
                    for d in digests:
                        self._index.setdefault(d.decode(), []).append(pack_id)
        return self._index

    def _read(self, pack_id: str, wanted: set[str]) -> dict[str, dict[str, np.ndarray]]:
        """The ``wanted`` digests' arrays that pack ``pack_id`` holds; {} (and the pack marked bad) when unreadable."""
        path = self._pack(pack_id)
        try:
            with np.load(path, allow_pickle=False) as pack:
                digests = [d.decode() for d in pack["digests"].tolist()]
                rows = [i for i, d in enumerate(digests) if d in wanted]
                if not rows:
                    return {}
                found: dict[str, dict[str, np.ndarray]] = {digests[i]: {} for i in rows}
                for name in pack.files:
                    if name == "digests" or name.endswith(OFFSETS):
                        continue
                    values = pack[name]
                    offsets = pack[name + OFFSETS] if name + OFFSETS in pack.files else None
                    if len(values if offsets is None else offsets[:-1]) != len(digests):
                        raise ValueError(f"{name} has rows for {len(values)} clips, digests for {len(digests)}")
                    for i in rows:
                        found[digests[i]][name] = values[i] if offsets is None else values[offsets[i] : offsets[i + 1]]
                return found
        except UNREADABLE as exc:
            _warn_once(path, "pack", exc)
            self._bad.add(pack_id)
            return {}

    def get_many(self, digests: Iterable[str]) -> dict[str, dict[str, np.ndarray]]:
        """digest -> arrays for every digest found in a readable pack. A job whose chunk was written
        before finds its pack by name; otherwise it reads the pack indexes and only the packs it needs."""
        wanted = set(digests)
        found: dict[str, dict[str, np.ndarray]] = {}
        own = _ids_hash(wanted)  # the pack this chunk writes when none of its clips was cached
        if wanted and self._pack(own).is_file():
            found.update(self._read(own, wanted))
        rest = wanted - found.keys()
        while rest:
            plan: dict[str, set[str]] = {}
            for d in rest:
                holders = [p for p in self.index().get(d, ()) if p not in self._bad]
                if holders:
                    plan.setdefault(holders[0], set()).add(d)
            if not plan:
                break
            for pack_id, ds in plan.items():
                got = self._read(pack_id, ds)
                if len(got) < len(ds):  # its index names digests it does not hold: do not ask it again
                    self._bad.add(pack_id)
                found.update(got)
            rest -= found.keys()
        self.hits += len(found)
        self.misses += len(wanted) - len(found)
        return found

    def put_many(self, entries: dict[str, dict[str, np.ndarray]]) -> Path | None:
        """Write ``entries`` (digest -> arrays, the same names for every clip) as one pack, then its
        index; remove packs found unreadable, whose clips the caller has just recomputed."""
        if not entries:
            return None
        digests = sorted(entries)
        pack_id = _ids_hash(digests)
        arrays: dict[str, np.ndarray] = {"digests": np.array(digests, dtype="S40")}
        for name in entries[digests[0]]:
            values = [np.asarray(entries[d][name]) for d in digests]
            if len({v.shape for v in values}) == 1:
                arrays[name] = np.stack(values)
            else:  # variable length (frame sequences): rows one after the other, and where each starts
                arrays[name] = np.concatenate([v for v in values if len(v)] or [values[0]])
                arrays[name + OFFSETS] = np.concatenate([[0], np.cumsum([len(v) for v in values])]).astype(np.int64)
        path = self._pack(pack_id)
        _write(path, lambda fh: np.savez(fh, **arrays))
        _write(self._index_of(pack_id), lambda fh: np.save(fh, arrays["digests"], allow_pickle=False))
        for bad in self._bad - {pack_id}:
            # another job may have replaced it with a good one meanwhile: removing that costs a recompute, never a wrong entry
            for stale in (self._index_of(bad), self._pack(bad)):
                stale.unlink(missing_ok=True)
        self._bad.clear()
        if self._index is not None:
            for d in digests:
                self._index.setdefault(d, []).append(pack_id)
        return path

    def discard(self, pack: Path) -> None:
        """Remove a pack this job wrote and has since folded into a bigger one (its index first, so
        no index names a missing pack for long; a reader that still finds it gone counts a miss)."""
        pack_id = pack.name[: -len(".npz")]
        self._index_of(pack_id).unlink(missing_ok=True)
        pack.unlink(missing_ok=True)
        if self._index is not None:
            for holders in self._index.values():
                if pack_id in holders:
                    holders.remove(pack_id)


def _scandir(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except FileNotFoundError:
        return []


def _is_old_bucket(entry: os.DirEntry) -> bool:
    """A folder of format 1's per-clip layout: two hex digits (``emb/{key}/{xx}``, ``files/{xx}``)."""
    return len(entry.name) == 2 and entry.is_dir() and all(c in "0123456789abcdef" for c in entry.name)


def _say_old_layout(root: Path) -> None:
    if f"old layout {root}" not in _said:
        _said.add(f"old layout {root}")
        log.info(
            "embedding cache %s holds the per-clip layout of an older audiofold: ignored (recomputed into packs); "
            "`audiofold cache prune` deletes it",
            root,
        )


def _check_old_layout(root: Path) -> None:
    """Say once per job if any config key still holds per-clip entries."""
    for key in _scandir(root / "emb"):
        if key.is_dir() and any(_is_old_bucket(e) for e in _scandir(Path(key.path))):
            _say_old_layout(root)
            return


def _write(path: Path, fill) -> None:
    """Atomic write that leaves other writers' temp files alone (many jobs share the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fill(fh)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ---- prune -------------------------------------------------------------------------------------
def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _mtime(entry: os.DirEntry) -> float:
    """Modification time; 0 for a file another job removed meanwhile (jobs and prunes may run at once)."""
    try:
        return entry.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def prune(cache_dir: str | os.PathLike, keep_keys: Iterable[str], max_bytes: int | None = None) -> dict:
    """Delete the per-clip layout of format 1 and temp files over a day old; then, with ``max_bytes``,
    the packs of config keys not in ``keep_keys``, oldest written first, while the cache is larger.
    Packs of ``keep_keys`` are never deleted (said when they alone exceed the cap). Returns counts."""
    root = Path(cache_dir)
    keep = set(keep_keys)
    summary = {"old_layout_folders": 0, "stale_temp_files": 0, "packs_deleted": 0, "bytes_freed": 0}
    for parent in [root / "files", *(Path(e.path) for e in _scandir(root / "emb") if e.is_dir())]:
        for entry in _scandir(parent):
            if _is_old_bucket(entry):
                summary["bytes_freed"] += sum(_size(p) for p in Path(entry.path).rglob("*"))
                shutil.rmtree(entry.path, ignore_errors=True)
                summary["old_layout_folders"] += 1
    now = time.time()
    folders = [root / "files", *(Path(e.path) / "packs" for e in _scandir(root / "emb") if e.is_dir())]
    for folder in folders:
        for entry in _scandir(folder):
            if entry.name.startswith(".tmp-") and now - (_mtime(entry) or now) > STALE_TEMP_SECONDS:
                summary["bytes_freed"] += _size(Path(entry.path))
                Path(entry.path).unlink(missing_ok=True)
                summary["stale_temp_files"] += 1
    # every pack of every key: (mtime, key, pack path)
    packs = []
    for key in _scandir(root / "emb"):
        for entry in _scandir(Path(key.path) / "packs"):
            if entry.name.endswith(".npz") and not entry.name.startswith("."):
                packs.append((_mtime(entry), key.name, Path(entry.path)))
    total = sum(_size(p) for folder in folders for p in map(Path, (e.path for e in _scandir(folder))))
    summary["bytes_before_cap"] = total
    if max_bytes is not None:
        for _, key, pack in sorted(packs):
            if total <= max_bytes:
                break
            if key in keep:
                continue
            index = pack.with_name(pack.name[: -len(".npz")] + ".idx.npy")
            freed = _size(pack) + _size(index)
            total -= freed
            summary["bytes_freed"] += freed
            index.unlink(missing_ok=True)  # the index first: a reader never finds a pack it names gone for long
            pack.unlink(missing_ok=True)
            summary["packs_deleted"] += 1
        if total > max_bytes:
            log.warning(
                "embedding cache %s: %.2f GB after pruning, over the cap of %.2f GB; the rest is what the "
                "given configs use (kept)",
                root,
                total / 1e9,
                max_bytes / 1e9,
            )
    for key in _scandir(root / "emb"):  # config keys left empty
        packs_dir = Path(key.path) / "packs"
        if (
            key.name not in keep
            and not _scandir(packs_dir)
            and all(e.name == "packs" for e in _scandir(Path(key.path)))
        ):
            shutil.rmtree(key.path, ignore_errors=True)
    summary["bytes"] = total
    return summary
