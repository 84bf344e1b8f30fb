"""Embed mono waves with a backbone: crops (test-time augmentation), batching, aggregation."""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np
from tqdm.auto import tqdm

from .audio import read_shard
from .backbones import Backbone
from .crops import unique_crops
from .errors import DataError
from .io import save_npz, write_meta

AGGREGATES = {"mean": np.mean, "max": np.max}


def embed_waves(
    waves: list[np.ndarray],
    backbone: Backbone,
    n_crops: int = 1,
    pad: str = "zeros",
    aggregate: str = "mean",
    keep_crops: bool = False,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings X (n, D) aggregated over crops, and the per-crop ones (n, K, D) when ``keep_crops``.

    With ``backbone.crop_seconds`` None the whole clip is the only crop (K = 1, ``n_crops`` ignored).
    Every clip uses the same crop ``seed``, so a clip's embedding does not depend on its neighbours.
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {sorted(AGGREGATES)}, got {aggregate!r}")
    if n_crops < 1:
        raise ValueError(f"n_crops must be at least 1, got {n_crops}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    bar = tqdm(total=len(waves), desc=f"embed {backbone.name}", unit="clip", disable=not progress)
    with bar:
        if backbone.crop_seconds is None:
            per_crop = _embed_whole_clips(waves, backbone, batch_size, bar)
        else:
            crop_len = max(1, round(backbone.crop_seconds * backbone.sample_rate))
            per_crop = _embed_crops(waves, backbone, crop_len, n_crops, pad, batch_size, seed, bar)
    X = AGGREGATES[aggregate](per_crop, axis=1).astype(np.float32)
    return X, (per_crop if keep_crops else None)


def _run(backbone: Backbone, batch: np.ndarray) -> np.ndarray:
    out = np.asarray(backbone.embed_batch(np.ascontiguousarray(batch, dtype=np.float32)), dtype=np.float32)
    if out.shape != (len(batch), backbone.dim):
        raise RuntimeError(f"backbone {backbone.name} returned shape {out.shape} for {len(batch)} crops; "
                           f"expected ({len(batch)}, {backbone.dim})")
    return out


def _embed_whole_clips(waves, backbone, batch_size, bar) -> np.ndarray:
    """(n, 1, D); clips of equal length share a batch, the others run one by one."""
    out = np.zeros((len(waves), 1, backbone.dim), dtype=np.float32)
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, wave in enumerate(waves):
        by_length[len(wave)].append(i)
    for indices in by_length.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            out[chunk, 0] = _run(backbone, np.stack([waves[i] for i in chunk]))
            bar.update(len(chunk))
    return out


def _embed_crops(waves, backbone, crop_len, n_crops, pad, batch_size, seed, bar) -> np.ndarray:
    """(n, K, D); distinct crops of consecutive clips are pooled into batches of ``batch_size``."""
    out = np.zeros((len(waves), n_crops, backbone.dim), dtype=np.float32)
    pending: list[tuple[int, np.ndarray, np.ndarray]] = []  # (clip, distinct crops, crop -> row)

    def flush() -> None:
        crops = np.concatenate([c for _, c, _ in pending])
        emb = np.concatenate([_run(backbone, crops[s : s + batch_size]) for s in range(0, len(crops), batch_size)])
        row = 0
        for clip, distinct, index in pending:
            out[clip] = emb[row + index]
            row += len(distinct)
        bar.update(len(pending))
        pending.clear()

    n_pending = 0
    for i, wave in enumerate(waves):
        distinct, index = unique_crops(np.asarray(wave, dtype=np.float32), crop_len, n_crops, pad, seed)
        pending.append((i, distinct, index))
        n_pending += len(distinct)
        if n_pending >= batch_size:
            flush()
            n_pending = 0
    if pending:
        flush()
    return out


def embed_shard(
    audio_shard_path: str | os.PathLike,
    backbone: Backbone,
    out_path: str | os.PathLike,
    *,
    n_crops: int = 1,
    pad: str = "zeros",
    aggregate: str = "mean",
    keep_crops: bool = False,
    batch_size: int = 32,
    seed: int = 0,
    meta: dict | None = None,
) -> dict:
    """Embed one decoded shard; writes ``ids``, ``X`` (and ``X_crops``) plus the metadata sidecar, returns the metadata."""
    ids, waves, sr = read_shard(audio_shard_path)
    if sr != backbone.sample_rate:
        raise DataError(
            f"audio shard {audio_shard_path} is at {sr} Hz but backbone {backbone.name!r} expects "
            f"{backbone.sample_rate} Hz; embed it from the {backbone.sample_rate} Hz shard (results/audio/{backbone.sample_rate}hz/)."
        )
    X, X_crops = embed_waves(waves, backbone, n_crops=n_crops, pad=pad, aggregate=aggregate, keep_crops=keep_crops,
                             batch_size=batch_size, seed=seed)
    arrays = {"ids": np.array(ids, dtype=str), "X": X}
    if X_crops is not None:
        arrays["X_crops"] = X_crops
    save_npz(out_path, **arrays)
    n_effective = 1 if backbone.crop_seconds is None else n_crops
    info = {"backbone": backbone.describe(), "shape": list(X.shape), "n_crops": n_effective,
            "tta": {"n_crops": n_crops, "pad": pad, "aggregate": aggregate, "keep_crops": keep_crops, "seed": seed},
            **(meta or {})}
    write_meta(out_path, **info)
    return info
