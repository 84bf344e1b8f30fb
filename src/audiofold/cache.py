"""Per-clip embedding cache shared across runs and projects.

An entry is keyed by the content hash of the clip's audio file (blake2b of its bytes) and a hash of
everything else the embedding depends on (backbone config, decode parameters, cache format), so a
changed file or a changed backbone gets a new key and a stale entry is never read. Hashing a file
is remembered per (absolute path, size, mtime) so unchanged files are not read twice. Layout:

    {cache_dir}/files/{xx}/{stat key}         content hash of one file state (text)
    {cache_dir}/emb/{config key}/{xx}/{content hash}.npz   one clip's arrays (X, X_crops, ...)

Writes are atomic (temp file + rename) and, unlike ``audiofold.io.atomic_path``, never clear other
writers' temp files: concurrent jobs, and projects sharing one cache, at worst compute an entry twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .io import load_npz, stable_hash

FORMAT_VERSION = 1
log = logging.getLogger(__name__)


def file_digest(path: str | os.PathLike, cache_dir: Path | None = None, chunk: int = 1 << 20) -> str:
    """blake2b of the file's bytes; remembered under ``cache_dir/files`` per (path, size, mtime_ns)."""
    path = Path(path)
    st = path.stat()
    memo = None
    if cache_dir is not None:
        stat_key = hashlib.blake2b(
            f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode(), digest_size=16
        ).hexdigest()
        memo = cache_dir / "files" / stat_key[:2] / stat_key
        if memo.is_file():
            return memo.read_text().strip()
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    digest = h.hexdigest()
    if memo is not None:
        _write(memo, lambda fh: fh.write(digest.encode() + b"\n"))
    return digest


def config_key(backbone_config: dict, max_seconds: float | None) -> str:
    """What an embedding depends on besides the audio: backbone options (not batching), decode length."""
    relevant = {k: v for k, v in backbone_config.items() if k not in ("batch_size", "max_padding")}
    return stable_hash({"backbone": relevant, "max_seconds": max_seconds, "format": FORMAT_VERSION}, length=16)


class EmbeddingCache:
    """get/put one clip's arrays by content hash under one config key."""

    def __init__(self, cache_dir: str | os.PathLike, key: str) -> None:
        self.root = Path(cache_dir)
        self.key = key
        self.hits = 0
        self.misses = 0

    def digest(self, path: str | os.PathLike) -> str:
        return file_digest(path, self.root)

    def _entry(self, digest: str) -> Path:
        return self.root / "emb" / self.key / digest[:2] / f"{digest}.npz"

    def get(self, digest: str) -> dict[str, np.ndarray] | None:
        """The entry's arrays, else None: absent, or unreadable (cut short, overwritten), which the
        caller then recomputes and ``put`` replaces."""
        entry = self._entry(digest)
        if entry.is_file():
            try:
                arrays = load_npz(entry)
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                log.warning("embedding cache entry %s is unreadable (%s): recomputing it", entry, exc)
            else:
                self.hits += 1
                return arrays
        self.misses += 1
        return None

    def put(self, digest: str, arrays: dict[str, np.ndarray]) -> None:
        _write(self._entry(digest), lambda fh: np.savez(fh, **arrays))


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
