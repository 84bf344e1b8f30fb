"""Multi-crop test-time augmentation: fixed-length crops at begin, center, end, 25 %, 75 %, then random."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

PADS = ("zeros", "loop")


def crop_starts(n_samples: int, crop_len: int, n_crops: int, seed: int = 0) -> list[int]:
    """Start sample of each crop; every start lies in [0, max(0, n_samples - crop_len)]."""
    if n_crops < 1:
        raise ValueError(f"n_crops must be at least 1, got {n_crops}")
    if crop_len < 1:
        raise ValueError(f"crop_len must be at least 1 sample, got {crop_len}")
    span = max(0, n_samples - crop_len)
    fixed = [0, span // 2, span, int(0.25 * span), int(0.75 * span)]
    if n_crops <= len(fixed):
        return fixed[:n_crops]
    extra = np.random.default_rng(seed).integers(0, span + 1, size=n_crops - len(fixed))
    return fixed + [int(s) for s in extra]


def _crop_at(wave: np.ndarray, start: int, crop_len: int, pad: str) -> np.ndarray:
    piece = wave[start : start + crop_len]
    if len(piece) == crop_len:
        return piece
    if pad == "loop" and len(wave):
        return np.resize(wave, crop_len)  # np.resize repeats the array to fill the new length
    return np.pad(piece, (0, crop_len - len(piece)))


def _check_pad(pad: str) -> None:
    if pad not in PADS:
        raise ValueError(f"pad must be one of {PADS}, got {pad!r}")


def make_crops(wave: np.ndarray, crop_len: int, n_crops: int, pad: str = "zeros", seed: int = 0) -> np.ndarray:
    """(n_crops, crop_len) crops of a 1-D wave; clips shorter than a crop are zero-padded or looped."""
    _check_pad(pad)
    starts = crop_starts(len(wave), crop_len, n_crops, seed)
    return np.stack([_crop_at(wave, s, crop_len, pad) for s in starts]).astype(wave.dtype, copy=False)


def unique_crops(
    wave: np.ndarray, crop_len: int, n_crops: int, pad: str = "zeros", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct crops (u, crop_len) and, per requested crop, its row: ``crops[index] == make_crops(...)``.

    Crops sharing a start are identical, so the model only has to run on each distinct one once
    (a clip shorter than the crop needs a single forward pass however many crops are asked for).
    """
    _check_pad(pad)
    starts = crop_starts(len(wave), crop_len, n_crops, seed)
    distinct, first, index = np.unique(starts, return_index=True, return_inverse=True)
    # Keep the rows in order of first request (begin crop first) rather than sorted by start.
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    crops = np.stack([_crop_at(wave, int(s), crop_len, pad) for s in distinct[order]]).astype(wave.dtype, copy=False)
    return crops, rank[index.reshape(-1)].astype(np.int64)


def crop_batches(
    waves: Iterable[np.ndarray], crop_len: int, n_crops: int, pad: str, seed: int, batch_size: int
) -> Iterator[tuple[np.ndarray, list[tuple[int, np.ndarray, np.ndarray]]]]:
    """The distinct crops (``unique_crops``) of consecutive clips, pooled until at least ``batch_size``
    crops wait: yields (crops stacked, [(clip position, its distinct crops, crop -> row within them)])."""
    pending: list[tuple[int, np.ndarray, np.ndarray]] = []
    n_pending = 0
    for i, wave in enumerate(waves):
        distinct, index = unique_crops(np.asarray(wave, dtype=np.float32), crop_len, n_crops, pad, seed)
        pending.append((i, distinct, index))
        n_pending += len(distinct)
        if n_pending >= batch_size:
            yield np.concatenate([c for _, c, _ in pending]), pending
            pending, n_pending = [], 0
    if pending:
        yield np.concatenate([c for _, c, _ in pending]), pending
