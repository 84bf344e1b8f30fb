"""Shared tail of the numpy-side encoders (CTranslate2 Whisper, ONNX speech_embedding): one clip at a
time through ``frames(wave) -> (T, frame_dim)``, pooled over time, frames optionally kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..io import file_sha256
from .base import Backbone, BackboneOptionError, pool_frames_np


class PooledWeightsMixin:
    """A pretrained model read from one weights file whose frames are pooled by mean (D) or mean and
    std (2D): the file's identity goes into the embedding metadata and ``audiofold doctor``."""

    frame_dim: int = 0
    pooling: str = "mean"

    def adopt_weights(self, path: Path) -> None:
        self.checkpoint_path = Path(path)
        self.checkpoint_sha256 = file_sha256(self.checkpoint_path)

    @property
    def dim(self) -> int:
        return self.frame_dim * (2 if self.pooling == "mean_std" else 1)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "checkpoint": {"path": str(self.checkpoint_path), "sha256": self.checkpoint_sha256},
        }

    def weights_status(self) -> dict[str, Any]:
        return {"path": str(self.checkpoint_path), "sha256": self.checkpoint_sha256, "present": True}


class FrameEncoderBackbone(PooledWeightsMixin, Backbone):
    """Subclasses set ``frame_dim`` and give ``frames``; each row is embedded alone, so with
    ``accepts_lengths`` the zero padding of a batch never reaches the model."""

    accepts_lengths = True

    def check_pooling(self, pooling: str, keep_sequence: bool) -> None:
        if pooling not in ("mean", "mean_std"):
            raise BackboneOptionError(self.type_name, "pooling", f"must be mean or mean_std, got {pooling!r}")
        if not isinstance(keep_sequence, bool):
            raise BackboneOptionError(self.type_name, "keep_sequence", f"must be true or false, got {keep_sequence!r}")
        self.pooling, self.keeps_sequence = pooling, keep_sequence

    def frames(self, wave: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def embed_outputs(self, crops: np.ndarray, lengths: np.ndarray | None = None) -> dict[str, Any]:
        crops = np.asarray(crops, dtype=np.float32)
        if crops.ndim != 2:
            raise ValueError(f"{self.type_name}.embed_batch expects a (batch, samples) array, got shape {crops.shape}")
        lengths = np.full(len(crops), crops.shape[1]) if lengths is None else lengths
        frames = [self.frames(row[:n]) for row, n in zip(crops, lengths)]
        out: dict[str, Any] = {"X": np.stack([pool_frames_np(f, self.pooling) for f in frames])}
        if self.keeps_sequence:
            out["seq"] = [f.astype(np.float16) for f in frames]
        return out

    def embed_batch(self, crops: np.ndarray) -> np.ndarray:
        return self.embed_outputs(crops)["X"]
