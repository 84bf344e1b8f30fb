"""Decoded, resampled waves of one chunk of clips on disk, read back one clip at a time.

The fine-tuning step reads its audio per batch from here instead of holding the data set in memory.
A store is two files: ``<chunk>.f32`` (every clip's mono float32 samples, one after the other) and
``<chunk>.npz`` (``ids``, ``offsets`` (n + 1, in samples), ``sample_rate``). It is built once per chunk
and sample rate, and shared by every model and fold that need that rate. Clips are read with
``np.fromfile`` at their offset, not through a memory map, so the pages of clips read earlier never
count toward the reader's resident memory.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .audio import ZERO_FILL_SECONDS, load_mono
from .errors import DataError
from .io import atomic_path, save_npz, write_meta

log = logging.getLogger(__name__)

DECODE_AHEAD = 8  # clips decoding in the thread pool ahead of the writer


def decode_row(path: str, action: str, sample_rate: int, max_seconds: float | None) -> np.ndarray:
    """One clip-table row's wave, as the embed step decodes it: ``zeros`` rows are silence."""
    if action == "zeros":
        return np.zeros(int(round(ZERO_FILL_SECONDS * sample_rate)), np.float32)
    return load_mono(path, sample_rate, max_seconds)


def audio_store(
    rows: list[tuple[str, str, str]],
    sample_rate: int,
    waves_out: str | os.PathLike,
    index_out: str | os.PathLike,
    *,
    max_seconds: float | None,
    decode_workers: int = 2,
) -> dict:
    """Decode one chunk's clips (id, path, action; ``skip`` rows left out) at ``sample_rate`` and write
    them one after the other to ``waves_out``, their offsets to ``index_out``. Holds at most
    ``DECODE_AHEAD`` clips in memory."""
    rows = [tuple(r) for r in rows if r[2] != "skip"]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    with (
        atomic_path(waves_out) as tmp,
        open(tmp, "wb") as sink,
        ThreadPoolExecutor(max(1, decode_workers)) as pool,
        tqdm(total=len(rows), desc=f"decode {sample_rate} Hz", unit="clip", disable=not rows) as bar,
    ):
        pending = [pool.submit(decode_row, r[1], r[2], sample_rate, max_seconds) for r in rows[:DECODE_AHEAD]]
        for i in range(len(rows)):
            wave = pending[i].result()
            pending[i] = None  # drop the reference: the wave is written and gone
            if i + DECODE_AHEAD < len(rows):
                r = rows[i + DECODE_AHEAD]
                pending.append(pool.submit(decode_row, r[1], r[2], sample_rate, max_seconds))
            np.ascontiguousarray(wave, dtype="<f4").tofile(sink)
            offsets[i + 1] = offsets[i] + len(wave)
            bar.update(1)
    save_npz(index_out, ids=np.array([r[0] for r in rows], dtype=str), offsets=offsets, sample_rate=sample_rate)
    info = {
        "sample_rate": sample_rate,
        "n_clips": len(rows),
        "seconds": round(float(offsets[-1]) / sample_rate, 3),
        "zero_filled": [r[0] for r in rows if r[2] == "zeros"],
        "waves": str(waves_out),
    }
    write_meta(index_out, **info)
    return info


def waves_path(index_path: str | os.PathLike) -> Path:
    """The samples file beside a store's index: ``train0.npz`` -> ``train0.f32``."""
    return Path(index_path).with_suffix(".f32")


class AudioStores:
    """Clips of several chunk stores at one sample rate, by id; ``read(i)`` decodes nothing.

    Holds only the ids and offsets (a few bytes per clip) and picklable, so DataLoader workers each
    open the files themselves.
    """

    def __init__(self, index_paths: list[str | os.PathLike], sample_rate: int | None = None) -> None:
        self.files: list[str] = []
        ids, file_of, start, length = [], [], [], []
        for k, index in enumerate(index_paths):
            with np.load(index, allow_pickle=False) as part:
                rate = int(part["sample_rate"])
                if sample_rate is not None and rate != sample_rate:
                    raise DataError(f"{index}: audio stored at {rate} Hz, but {sample_rate} Hz was asked for.")
                sample_rate = rate
                offsets = part["offsets"]
                ids.extend(str(i) for i in part["ids"])
            self.files.append(str(waves_path(index)))
            file_of.append(np.full(len(offsets) - 1, k, dtype=np.int32))
            start.append(offsets[:-1])
            length.append(np.diff(offsets))
        self.sample_rate = sample_rate
        self.ids = ids
        self.row = {clip: i for i, clip in enumerate(ids)}
        self.file_of = np.concatenate(file_of) if file_of else np.zeros(0, np.int32)
        self.start = np.concatenate(start) if start else np.zeros(0, np.int64)
        self.length = np.concatenate(length) if length else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, wanted: list[str], what: str = "clips") -> np.ndarray:
        """Store rows of ``wanted`` ids; DataError naming ``what`` when one was never stored."""
        missing = [w for w in wanted if w not in self.row]
        if missing:
            raise DataError(f"{what}: no stored audio for {len(missing)} id(s), e.g. {missing[:5]}; rerun audio_store.")
        return np.array([self.row[w] for w in wanted], dtype=np.int64)

    def read(self, row: int, start: int = 0, count: int | None = None) -> np.ndarray:
        """Samples ``start`` .. ``start + count`` of stored clip ``row`` (all of it by default)."""
        n = int(self.length[row])
        start = min(max(0, int(start)), n)
        count = n - start if count is None else min(int(count), n - start)
        offset = (int(self.start[row]) + start) * 4
        return np.fromfile(self.files[self.file_of[row]], dtype="<f4", count=count, offset=offset)
