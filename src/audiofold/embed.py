"""Embed mono waves with a backbone: crops (test-time augmentation), batching, aggregation."""

from __future__ import annotations

import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .audio import ZERO_FILL_SECONDS, load_mono
from .backbones import Backbone
from .crops import crop_batches
from .errors import DataError
from .io import save_npz, write_meta

log = logging.getLogger(__name__)

AGGREGATES = {"mean": np.mean, "max": np.max}
# batch_size "auto": on a 2-core AVX2 CPU, WavLM-base on 40 clips of 5 s took 17-19 s at 1-4 clips per
# batch and 22-24 s at 16-32 (benchmarks/results/extract_speed.md); a GPU needs large batches to be busy
AUTO_BATCH = {"cpu": 4, "cuda": 32}


def resolve_batch_size(batch_size: int | str, backbone: Backbone) -> int:
    """``batch_size`` as configured -> crops per forward pass; ``"auto"`` follows the backbone's device."""
    if batch_size == "auto":
        return AUTO_BATCH["cuda" if getattr(backbone, "device", "cpu") == "cuda" else "cpu"]
    return batch_size


def embed_waves(waves: list[np.ndarray], backbone: Backbone, **options) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings X (n, D) aggregated over crops, and the per-crop ones (n, K, D) when ``keep_crops``;
    ``options`` as for ``extract``."""
    out = extract(waves, backbone, **options)
    return out["X"], out.get("X_crops")


def extract(
    waves: list[np.ndarray],
    backbone: Backbone,
    n_crops: int = 1,
    pad: str = "zeros",
    aggregate: str = "mean",
    keep_crops: bool = False,
    batch_size: int | str = "auto",
    seed: int = 0,
    progress: bool = True,
    max_padding: float = 0.25,
) -> dict:
    """Every shard array the backbone produces (docs/DESIGN.md "Embedding shard"): ``X`` (n, D);
    ``X_crops`` (n, K, D) when ``keep_crops``; ``X_layers`` (n, L, D) when the backbone keeps layers
    (aggregated over crops like X); ``seq`` (a list of n float16 arrays) when it keeps frame sequences;
    a clip's sequence is the frames of its distinct crops, one after the other.

    With ``backbone.crop_seconds`` None the whole clip is the only crop (K = 1, ``n_crops`` ignored).
    Every clip uses the same crop ``seed``, so a clip's embedding does not depend on its neighbours.
    Whole clips of different lengths share a batch (zero-padded, at most ``max_padding`` of a row)
    when the backbone masks padding (``accepts_lengths``); otherwise only equal lengths do.
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {sorted(AGGREGATES)}, got {aggregate!r}")
    if n_crops < 1:
        raise ValueError(f"n_crops must be at least 1, got {n_crops}")
    batch_size = resolve_batch_size(batch_size, backbone)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    k = 1 if backbone.crop_seconds is None else n_crops
    sink = _Sink(len(waves), k, backbone)
    bar = tqdm(total=len(waves), desc=f"embed {backbone.name}", unit="clip", disable=not progress)
    with bar:
        if backbone.crop_seconds is None:
            _embed_whole_clips(waves, backbone, batch_size, max_padding, bar, sink)
        else:
            crop_len = max(1, round(backbone.crop_seconds * backbone.sample_rate))
            _embed_crops(waves, backbone, crop_len, n_crops, pad, batch_size, seed, bar, sink)
    result = {"X": AGGREGATES[aggregate](sink.X, axis=1).astype(np.float32)}
    if keep_crops:
        result["X_crops"] = sink.X
    if sink.layers is not None:
        result["X_layers"] = AGGREGATES[aggregate](sink.layers, axis=1).astype(np.float32)
    if sink.seq is not None:
        result["seq"] = [np.concatenate(parts) if parts else np.zeros((0,), np.float16) for parts in sink.seq]
    return result


class _Sink:
    """Per-clip, per-crop outputs as they come back from the batches."""

    def __init__(self, n: int, k: int, backbone: Backbone) -> None:
        self.X = np.zeros((n, k, backbone.dim), dtype=np.float32)
        self.layers = (
            None if backbone.n_layers is None else np.zeros((n, k, backbone.n_layers, backbone.dim), dtype=np.float32)
        )
        self.seq: list[list[np.ndarray]] | None = [[] for _ in range(n)] if backbone.keeps_sequence else None

    def put(self, clip: int, out: dict, rows: np.ndarray, distinct_rows: np.ndarray) -> None:
        """Clip ``clip``'s crop k is ``out`` row ``rows[k]``; its distinct crops are ``distinct_rows``."""
        self.X[clip] = out["X"][rows]
        if self.layers is not None:
            self.layers[clip] = out["layers"][rows]
        if self.seq is not None:
            self.seq[clip] = [out["seq"][r] for r in distinct_rows]


def _run(backbone: Backbone, batch: np.ndarray, lengths: np.ndarray | None = None) -> dict:
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    out = backbone.embed_outputs(batch) if lengths is None else backbone.embed_outputs(batch, lengths=lengths)
    out["X"] = np.asarray(out["X"], dtype=np.float32)
    if out["X"].shape != (len(batch), backbone.dim):
        raise RuntimeError(
            f"backbone {backbone.name} returned shape {out['X'].shape} for {len(batch)} crops; "
            f"expected ({len(batch)}, {backbone.dim})"
        )
    if backbone.n_layers is not None:
        out["layers"] = np.asarray(out["layers"], dtype=np.float32)
        if out["layers"].shape != (len(batch), backbone.n_layers, backbone.dim):
            raise RuntimeError(
                f"backbone {backbone.name} returned layers of shape {out['layers'].shape}; expected "
                f"({len(batch)}, {backbone.n_layers}, {backbone.dim})"
            )
    if backbone.keeps_sequence and len(out["seq"]) != len(batch):
        raise RuntimeError(f"backbone {backbone.name} returned {len(out['seq'])} sequences for {len(batch)} crops")
    return out


def _concat(outs: list[dict]) -> dict:
    merged = {key: np.concatenate([o[key] for o in outs]) for key in ("X", "layers") if key in outs[0]}
    if "seq" in outs[0]:
        merged["seq"] = [s for o in outs for s in o["seq"]]
    return merged


def length_batches(lengths: list[int], batch_size: int, max_padding: float) -> list[list[int]]:
    """Clip indices in batches of at most ``batch_size``, longest first, a batch closing before a clip
    would be padded by more than ``max_padding`` of the batch's longest (0: equal lengths only)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and lengths[i] >= (1 - max_padding) * lengths[batches[-1][0]]:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def _embed_whole_clips(waves, backbone, batch_size, max_padding, bar, sink) -> None:
    """Clips of similar length share a zero-padded batch when the backbone masks padding; equal lengths otherwise."""
    padded = backbone.accepts_lengths and max_padding > 0
    for chunk in length_batches([len(w) for w in waves], batch_size, max_padding if padded else 0.0):
        lengths = np.array([len(waves[i]) for i in chunk])
        batch = np.zeros((len(chunk), lengths.max()), dtype=np.float32)
        for row, clip in enumerate(chunk):
            batch[row, : lengths[row]] = waves[clip]
        out = _run(backbone, batch, lengths if padded and lengths.min() < lengths.max() else None)
        for row, clip in enumerate(chunk):
            sink.put(clip, out, np.array([row]), np.array([row]))
        bar.update(len(chunk))


def _embed_crops(waves, backbone, crop_len, n_crops, pad, batch_size, seed, bar, sink) -> None:
    """Distinct crops of consecutive clips are pooled into batches of ``batch_size``."""
    for crops, group in crop_batches(waves, crop_len, n_crops, pad, seed, batch_size):
        out = _concat([_run(backbone, crops[s : s + batch_size]) for s in range(0, len(crops), batch_size)])
        row = 0
        for clip, distinct, index in group:
            sink.put(clip, out, row + index, row + np.arange(len(distinct)))
            row += len(distinct)
        bar.update(len(group))


# Clips decoded per block in embed_clips: the next block decodes while the model runs on this one
DECODE_BLOCK = 32
# A job with a cache writes what it embedded every this many clips, so a killed job loses at most
# that much work; at the end one pack of the chunk's new clips replaces these checkpoint packs.
CHECKPOINT_CLIPS = 1024


def embed_clips(
    rows: list[tuple[str, str, str]],
    backbone: Backbone,
    out_path: str | os.PathLike,
    *,
    max_seconds: float | None,
    cache=None,
    n_crops: int = 1,
    pad: str = "zeros",
    aggregate: str = "mean",
    keep_crops: bool = False,
    batch_size: int | str = "auto",
    max_padding: float = 0.25,
    seed: int = 0,
    threads: int | None = None,
    decode_workers: int = 2,
    meta: dict | None = None,
    known_digests: list[str | None] | None = None,
) -> dict:
    """Embed one chunk of clips straight from their files; writes the embedding shard and its metadata.

    ``rows`` are (id, path, action) from the validated clip table: ``skip`` rows are left out,
    ``zeros`` rows embed ``ZERO_FILL_SECONDS`` of silence. With ``cache`` (an
    ``audiofold.cache.EmbeddingCache``) a clip whose file content was embedded before under the same
    config is read back, and only the misses are decoded and run through the model, then written as
    one pack. ``known_digests`` (one per row, from the chunk's manifest) are the files' content hashes
    where known, so the job hashes only the others. Decoding runs in a
    thread pool one block ahead of the model, so a job holds at most two blocks of audio.
    """
    known = [None] * len(rows) if known_digests is None else list(known_digests)
    if len(known) != len(rows):
        raise ValueError(f"{len(known)} known digests for {len(rows)} rows")
    known = [d for r, d in zip(rows, known) if r[2] != "skip"]
    rows = [tuple(r) for r in rows if r[2] != "skip"]
    sr = backbone.sample_rate
    if threads:
        set_torch_threads(threads)
        backbone.set_threads(threads)
    per_clip: list[dict | None] = [None] * len(rows)
    digests: list[str | None] = [None] * len(rows)
    cache_seconds = time.perf_counter()
    if cache is not None:
        for i, (_, path, action) in enumerate(rows):
            if action != "zeros":
                digests[i] = known[i] or cache.digest(path)
        cache.memo.flush()  # file states this job hashed, remembered even if embedding fails below
        found = cache.get_many(d for d in digests if d is not None)
        per_clip = [None if d is None else found.get(d) for d in digests]
    todo = [i for i, got in enumerate(per_clip) if got is None]
    cache_seconds = time.perf_counter() - cache_seconds
    if cache is not None:
        log.info(
            "embedding cache %s: %d hit(s), %d miss(es)",
            cache.root / "emb" / cache.key,
            len(rows) - len(todo),
            len(todo),
        )

    def decode(i: int) -> np.ndarray:
        _, path, action = rows[i]
        return (
            np.zeros(int(round(ZERO_FILL_SECONDS * sr)), np.float32)
            if action == "zeros"
            else load_mono(path, sr, max_seconds)
        )

    blocks = [todo[s : s + DECODE_BLOCK] for s in range(0, len(todo), DECODE_BLOCK)]
    options = dict(
        n_crops=n_crops,
        pad=pad,
        aggregate=aggregate,
        keep_crops=keep_crops,
        batch_size=batch_size,
        seed=seed,
        max_padding=max_padding,
        progress=False,
    )
    with (
        ThreadPoolExecutor(max(1, decode_workers)) as pool,
        tqdm(total=len(todo), desc=f"embed {backbone.name}", unit="clip", disable=not todo) as bar,
    ):
        pending = [pool.submit(decode, i) for i in blocks[0]] if blocks else []
        checkpoints, unsaved = [], []
        for k, block in enumerate(blocks):
            waves = [f.result() for f in pending]
            pending = [pool.submit(decode, i) for i in blocks[k + 1]] if k + 1 < len(blocks) else []
            out = extract(waves, backbone, **options)
            for j, i in enumerate(block):
                per_clip[i] = {key: value[j] for key, value in out.items()}
            bar.update(len(block))
            del waves, out
            unsaved += block
            if cache is not None and len(unsaved) >= CHECKPOINT_CLIPS and k + 1 < len(blocks):
                checkpoints.append(cache.put_many({digests[i]: per_clip[i] for i in unsaved if digests[i] is not None}))
                unsaved = []
    if cache is not None:  # one pack of this chunk's new clips (those cached already are in other packs)
        started = time.perf_counter()
        final = cache.put_many({digests[i]: per_clip[i] for i in todo if digests[i] is not None})
        for pack in checkpoints:
            if pack is not None and pack != final:
                cache.discard(pack)
        cache_seconds += time.perf_counter() - started
        # benchmarks/scale.py reads this line: the cache's share of the step
        log.info("embedding cache: %.2fs reading and writing", cache_seconds)

    arrays = {"ids": np.array([r[0] for r in rows], dtype=str)}
    keys = per_clip[0].keys() if per_clip else ["X"]
    for key in keys:
        if key == "seq":
            arrays["seq"], arrays["seq_offsets"] = pack_sequences([p["seq"] for p in per_clip], backbone)
        else:
            arrays[key] = (
                np.stack([p[key] for p in per_clip]).astype(np.float32)
                if per_clip
                else np.zeros((0, backbone.dim), np.float32)
            )
    save_npz(out_path, **arrays)
    info = {
        "backbone": backbone.describe(),
        "shape": list(arrays["X"].shape),
        "n_crops": 1 if backbone.crop_seconds is None else n_crops,
        "tta": {"n_crops": n_crops, "pad": pad, "aggregate": aggregate, "keep_crops": keep_crops, "seed": seed},
        "batching": {
            "batch_size": resolve_batch_size(batch_size, backbone),
            "requested": batch_size,
            "max_padding": max_padding,
        },
        "cache": None
        if cache is None
        else {"dir": str(cache.root), "key": cache.key, "hits": len(rows) - len(todo), "misses": len(todo)},
        "zero_filled": [r[0] for r in rows if r[2] == "zeros"],
        **(meta or {}),
    }
    write_meta(out_path, **info)
    return info


def pack_sequences(seqs: list[np.ndarray], backbone: Backbone) -> tuple[np.ndarray, np.ndarray]:
    """Variable-length frame sequences -> ``seq`` float16 (sum T_i, ...) and ``seq_offsets`` int64 (n+1)."""
    frame_shape = (backbone.dim,) if backbone.n_layers is None else (backbone.n_layers, backbone.dim)
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in seqs])
    parts = [np.asarray(s, dtype=np.float16) for s in seqs if len(s)]
    seq = np.concatenate(parts) if parts else np.zeros((0, *frame_shape), dtype=np.float16)
    return seq, offsets


def unpack_sequences(seq: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """Inverse of ``pack_sequences``: clip i's (T_i, ...) float32 frames."""
    return [seq[offsets[i] : offsets[i + 1]].astype(np.float32) for i in range(len(offsets) - 1)]


def set_torch_threads(threads: int) -> None:
    """Match torch's intra-op pool to the job's cores (a rule's ``threads``); oversubscription slows CPU inference."""
    if "torch" in sys.modules:  # hand-crafted backbones never import torch
        sys.modules["torch"].set_num_threads(int(threads))


# ---- reading the chunks back: the train, shift, duplicates and auto_groups steps' input ----
# Head input kind -> (shard key, backbone option that makes the embed step write it); "crops" is
# what a head with train_on_crops fits on (its predictions stay on X).
INPUT_KEYS = {
    "pooled": ("X", None),
    "layers": ("X_layers", "layer: all"),
    "sequence": ("seq", "keep_sequence: true"),
    "crops": ("X_crops", "tta: {keep_crops: true}"),
}


def load_embeddings(
    paths: list[str | Path], inputs: str = "pooled", wanted: list[str] | None = None, what: str = "clips"
) -> tuple[list[str], np.ndarray | list[np.ndarray]]:
    """Gather embedding chunks: (ids, X) for ``inputs`` pooled / layers (arrays) or sequence (list of arrays).

    With ``wanted``, X holds exactly those clips in that order (ids == wanted) and a clip with no
    embedding is a DataError naming ``what``. Only the arrays the head reads are loaded from each
    chunk (a chunk may also hold frame sequences many times its pooled size), and pooled / layer
    rows go straight to their place in one preallocated array: a job's peak is the matrix plus one
    chunk's block, never a second copy of the matrix.
    """
    key, option = INPUT_KEYS[inputs]
    chunk_ids: list[list[str]] = []
    for p in paths:  # np.load of an npz reads a key only when it is asked for
        with np.load(p, allow_pickle=False) as shard:
            if key not in shard.files:
                who, instead = (
                    ("train_on_crops: true", "drop the head's train_on_crops")
                    if inputs == "crops"
                    else (f"inputs: {inputs}", "give the head inputs: pooled")
                )
                raise DataError(
                    f"{p}: has no {key!r}, which a head with {who} needs; set the backbone "
                    f"option `{option}` in config.yaml (or {instead})."
                )
            chunk_ids.append([str(i) for i in shard["ids"]])
    ids = [i for chunk in chunk_ids for i in chunk]
    if wanted is None:
        wanted = ids
    else:
        wanted = [str(w) for w in wanted]
        known = set(ids)
        missing = [w for w in wanted if w not in known]
        if missing:
            raise DataError(f"{what}: no embedding for {len(missing)} id(s), e.g. {missing[:5]}; rerun the embed step.")
    position = {clip: row for row, clip in enumerate(wanted)}
    X: np.ndarray | list | None = [None] * len(wanted) if inputs == "sequence" else None
    for p, chunk in zip(paths, chunk_ids):
        # where each of this chunk's rows goes (-1: a clip not wanted)
        target = np.array([position.get(clip, -1) for clip in chunk], dtype=np.int64)
        keep = target >= 0
        if not keep.any():
            continue
        with np.load(p, allow_pickle=False) as shard:
            if inputs == "sequence":
                for row, frames in zip(target, unpack_sequences(shard["seq"], shard["seq_offsets"])):
                    if row >= 0:
                        X[row] = frames
                continue
            block = shard[key]
        if X is None:
            X = np.empty((len(wanted), *block.shape[1:]), dtype=np.float32)
        X[target[keep]] = block[keep]
    if X is None:
        X = np.empty((0, 0), dtype=np.float32)
    return list(wanted), X
