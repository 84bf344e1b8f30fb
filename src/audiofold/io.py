"""Atomic artifact writes (write to a temp file in the same folder, then rename) and metadata sidecars."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``path``; rename it onto ``path`` only if the block succeeds.

    A killed process leaves at most a ``.tmp-*`` file behind, never a half-written artifact
    under the final name, so Snakemake/DVC never mistake a partial file for a finished one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A writer killed by SIGKILL leaves its temp file; one job owns each artifact, so its rerun clears them.
    for stale in path.parent.glob(f".tmp-{glob.escape(path.name)}-*"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_text_if_changed(path: str | os.PathLike, text: str) -> bool:
    """Write ``text`` (atomically) unless the file already holds exactly it; True when written.

    An unchanged file keeps its mtime, so Snakemake reruns nothing that reads it.
    """
    try:
        if Path(path).read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass  # missing or unreadable: written below
    write_text(path, text)
    return True


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(_finite_or_null(obj), indent=2, sort_keys=True, default=_json_default) + "\n")


def _finite_or_null(obj: Any) -> Any:
    """NaN and infinities as None: JSON has no NaN (json.dumps would write a token other readers refuse)."""
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_null(v) for v in obj]
    return obj


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_csv(path: str | os.PathLike, df, **kwargs) -> None:
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **kwargs)


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Uncompressed npz written atomically (np.savez appends .npz to names without it, so use a handle)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def meta_path(artifact: str | os.PathLike) -> Path:
    """Sidecar metadata path: ``x/y.npz`` -> ``x/y.meta.json``."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name.split(".")[0] + ".meta.json")


def write_meta(artifact: str | os.PathLike, **meta: Any) -> None:
    write_json(meta_path(artifact), meta)


def npz_shapes(path: str | os.PathLike) -> dict[str, list[int]]:
    """Array name -> shape of an ``.npz``, read from the array headers (no array data is loaded)."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    shapes = {}
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            with zf.open(member) as fh:
                version = np.lib.format.read_magic(fh)
                if version not in readers:  # a header version numpy writes only for exotic dtypes
                    return {k: list(v.shape) for k, v in load_npz(path).items()}
                shapes[member.removesuffix(".npy")] = list(readers[version](fh)[0])
    return shapes


def describe_file(path: str | os.PathLike) -> dict[str, Any]:
    """Size and, for arrays and tables, their shapes: what a sidecar says about an artifact's content."""
    path = Path(path)
    info: dict[str, Any] = {"file": path.name, "bytes": path.stat().st_size}
    if path.suffix == ".npz":
        info["arrays"] = npz_shapes(path)
    elif path.suffix == ".csv":
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        info.update(rows=len(table), columns=list(table.columns))
    return info


def stable_hash(obj: Any, length: int = 12) -> str:
    """Short sha256 of a JSON-serialisable object with sorted keys (config hashes in metadata)."""
    blob = json.dumps(obj, sort_keys=True, default=_json_default).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
