"""Backbone interface: turns fixed-length float32 crops at ``sample_rate`` into embedding vectors."""

from __future__ import annotations

import abc
import os
from typing import Any

import numpy as np

from ..errors import ConfigError


class BackboneOptionError(ConfigError):
    """A bad backbone option; ``build_backbone`` re-words it with the backbone's config name."""

    def __init__(self, backbone_type: str, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"backbones.{backbone_type}.{key}: {problem}")


class Backbone(abc.ABC):
    """Subclasses declare their options as keyword-only arguments of ``__init__``.

    ``build_backbone`` checks config keys against that signature, so the signature is the one
    place that lists what a backbone accepts (and its default ``sample_rate``).
    """

    type_name: str = ""

    def __init__(self, *, sample_rate: int, crop_seconds: float | None = None, **params: Any) -> None:
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise BackboneOptionError(
                self.type_name, "sample_rate", f"must be a positive integer (Hz), got {sample_rate!r}"
            )
        if crop_seconds is not None and not crop_seconds > 0:
            raise BackboneOptionError(
                self.type_name, "crop_seconds", f"must be positive or null (whole clip), got {crop_seconds!r}"
            )
        self.name = self.type_name  # build_backbone replaces it with the config key
        self.sample_rate = int(sample_rate)
        self.crop_seconds = None if crop_seconds is None else float(crop_seconds)
        self.params = {"sample_rate": self.sample_rate, "crop_seconds": self.crop_seconds, **params}

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Length D of one embedding."""

    @abc.abstractmethod
    def embed_batch(self, crops: np.ndarray) -> np.ndarray:
        """float32 (B, T) crops at ``sample_rate`` -> float32 (B, D) embeddings."""

    # Extra shard outputs (docs/DESIGN.md "Embedding shard"): subclasses that can produce them set
    # these from their options and override ``embed_outputs``.
    n_layers: int | None = None  # L when the backbone returns pooled per-layer embeddings (X_layers)
    keeps_sequence: bool = False  # True when it returns frame sequences (seq)
    # Cores one embed job can keep busy: 1 for numpy front ends that run one thread at a time (two
    # such jobs side by side use two cores); None: the rule's default, for torch models that use them.
    job_threads: int | None = None
    # True when embed_outputs takes ``lengths`` and masks the zero padding (clips of different
    # lengths then share a batch); the others only see batches of equal-length crops.
    accepts_lengths: bool = False

    def embed_outputs(self, crops: np.ndarray, lengths: np.ndarray | None = None) -> dict[str, Any]:
        """``{"X": (B, D)}``, plus ``"layers"`` float32 (B, L, D) when ``n_layers`` is set and ``"seq"``
        (a list of B float arrays (T_i, D), or (T_i, L, D) with layers) when ``keeps_sequence``.

        ``lengths`` (B,), only passed when ``accepts_lengths``: row i holds ``lengths[i]`` real samples
        followed by zero padding, and its outputs must be those of the unpadded row."""
        return {"X": self.embed_batch(crops)}

    def set_threads(self, threads: int) -> None:  # noqa: B027  optional hook, a no-op by default
        """Use ``threads`` cores (the job's); torch backbones follow ``torch.set_num_threads`` instead."""

    def describe(self) -> dict[str, Any]:
        """What made the embeddings, for artifact metadata."""
        return {
            "type": self.type_name,
            "name": self.name,
            "params": dict(self.params),
            "dim": self.dim,
            "sample_rate": self.sample_rate,
            "crop_seconds": self.crop_seconds,
        }

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({options})"


def positive_int(backbone_type: str, key: str, value: Any) -> int:
    """``value`` as an int, or BackboneOptionError naming the key."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise BackboneOptionError(backbone_type, key, f"must be a positive integer, got {value!r}")
    return int(value)


def pool_frames_np(frames: np.ndarray, pooling: str) -> np.ndarray:
    """(T, D) frames -> (D,) mean or (2D,) mean and standard deviation, float32 (numpy backbones)."""
    frames = np.asarray(frames, dtype=np.float32)
    mean = frames.mean(axis=0)
    return mean if pooling == "mean" else np.concatenate([mean, frames.std(axis=0)])


def default_threads() -> int:
    """The cores this process may use: engines that fix their thread pool at load time start with these."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
