"""Torch encoders the fine-tuning step trains: waves -> input features -> frames (B, T, D).

Each encoder splits its forward pass in two. ``features`` (no gradient) turns a batch of waves into
what the network reads: a log-mel spectrogram (B, T, F) for the CNNs, on which the training loop
may draw SpecAugment masks, or the waves themselves for the SSL transformers. ``frames`` is the
trainable part. ``blocks`` lists the network's blocks from input to output, so ``unfreeze: N``
trains the last N of them.

Types: ``cnn`` (a small log-mel CNN trained from scratch: tiny data, tests), ``aisfx`` (the CNN whose
weights ship in its package), ``panns`` (CNN14 from its checkpoint), ``torchaudio`` (wav2vec2 /
WavLM / HuBERT from a checkpoint). The pretrained ones load through the matching backbone class, so
checkpoints resolve and fail the same way as for embedding.
"""

from __future__ import annotations

from typing import Any

import librosa
import numpy as np
import torch
from torch import nn

from . import checkpoints
from .backbones import AisfxBackbone, PannsBackbone, TorchaudioSSLBackbone
from .backbones.panns import VARIANTS
from .errors import ConfigError
from .registry import keyword_options

ENCODER_TYPES = ("cnn", "aisfx", "panns", "torchaudio")


class Encoder(nn.Module):
    """Base: subclasses set ``sample_rate``, ``dim``, ``spectrogram`` and implement the three methods."""

    sample_rate: int = 16000
    dim: int = 0
    spectrogram: bool = True  # features are (B, T, F) log-mel frames (SpecAugment applies)

    def features(self, waves: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def frames(self, feats: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def blocks(self) -> list[nn.Module]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "dim": self.dim, "blocks": len(self.blocks())}


def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    return torch.from_numpy(
        librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).astype(np.float32)
    )


class CNNEncoder(Encoder):
    """Log-mel (dB) -> per-band batch norm -> conv blocks (3x3 conv, BN, ReLU, 2x2 average pool) -> mean
    over frequency. Random initialisation: the small model for small data and tests."""

    def __init__(
        self, *, sample_rate: int = 16000, n_mels: int = 64, n_fft: int = 512, hop: int = 160, channels=(16, 32, 64)
    ) -> None:
        super().__init__()
        if not channels or any(int(c) < 1 for c in channels):
            raise ConfigError(f"encoder.channels must be a non-empty list of positive integers, got {channels!r}")
        self.sample_rate, self.n_fft, self.hop = int(sample_rate), int(n_fft), int(hop)
        self.register_buffer("mel", _mel_basis(self.sample_rate, self.n_fft, int(n_mels), 0.0, self.sample_rate / 2))
        self.register_buffer("window", torch.hann_window(self.n_fft))
        self.bn0 = nn.BatchNorm1d(int(n_mels))
        layers, c_in = [], 1
        for c_out in channels:
            layers.append(
                nn.Sequential(
                    nn.Conv2d(c_in, int(c_out), 3, padding=1, bias=False),
                    nn.BatchNorm2d(int(c_out)),
                    nn.ReLU(),
                    nn.AvgPool2d(2, ceil_mode=True),
                )
            )
            c_in = int(c_out)
        self.convs = nn.ModuleList(layers)
        self.dim = c_in

    def features(self, waves):
        stft = torch.stft(waves, self.n_fft, self.hop, window=self.window, center=True, return_complex=True)
        mel = self.mel @ stft.abs().pow(2)
        return (10 * torch.log10(mel.clamp(min=1e-10))).transpose(1, 2)  # (B, T, F)

    def frames(self, feats):
        x = self.bn0(feats.transpose(1, 2)).transpose(1, 2).unsqueeze(1)  # (B, 1, T, F)
        for block in self.convs:
            x = block(x)
        return x.mean(dim=3).transpose(1, 2)  # (B, T', C)

    def blocks(self):
        return [self.bn0, *self.convs]


class AisfxEncoder(Encoder):
    """aiSFX's 4-block CNN over the package's 96-band log-mel at 44.1 kHz; its conv output frames (mean
    over frequency, 512-d) are pooled by the head instead of the package's max over 100-frame blocks."""

    sample_rate = 44100
    dim = 512

    def __init__(self) -> None:
        super().__init__()

        self.frontend = AisfxBackbone()  # loads the packaged weights (fp32: trained here); log_mel is numpy
        self.net = self.frontend.model
        del self.frontend.model  # one owner of the weights: this module

    def features(self, waves):
        return torch.from_numpy(self.frontend.log_mel(waves.detach().cpu().numpy())).to(waves.device)

    def frames(self, feats):
        x = feats.unsqueeze(1)
        for i, block in enumerate(self.blocks(), start=1):
            x = block(x, pool_size=(2, 2) if i < 4 else (1, 1), pool_type=self.net.pool_type)
        return x.mean(dim=3).transpose(1, 2)

    def blocks(self):
        return [self.net.conv_block1, self.net.conv_block2, self.net.conv_block3, self.net.conv_block4]


class PannsEncoder(Encoder):
    """PANNs CNN14 (its checkpoint, as the ``panns`` backbone): conv_block1..6 frames, 2048-d."""

    dim = 2048

    def __init__(self, *, variant: str = "cnn14", checkpoint: str | None = None) -> None:
        super().__init__()

        self.frontend = PannsBackbone(variant=variant, checkpoint=checkpoint)
        self.net = self.frontend.model
        del self.frontend.model
        self.sample_rate = self.frontend.sample_rate

    def features(self, waves):
        return self.frontend.log_mel(waves.detach().cpu()).to(waves.device)

    def frames(self, feats):
        return self.net.frames(feats)

    def blocks(self):
        return [self.net.bn0, *(getattr(self.net, f"conv_block{i}") for i in range(1, 7))]


class TorchaudioEncoder(Encoder):
    """A torchaudio SSL transformer (wav2vec2 / WavLM / HuBERT) from its checkpoint: last layer's frames."""

    spectrogram = False

    def __init__(self, *, bundle: str = "wavlm_base_plus", checkpoint: str | None = None, arch: dict | None = None):
        super().__init__()

        self.frontend = TorchaudioSSLBackbone(bundle=bundle, checkpoint=checkpoint, arch=arch, device="cpu")
        self.net = self.frontend.model
        del self.frontend.model
        self.sample_rate = self.frontend.sample_rate
        self.dim = self.frontend.encoder_dim

    def features(self, waves):
        if self.frontend.normalize_waveform:  # the large models were trained on per-clip normalised audio
            return nn.functional.layer_norm(waves, waves.shape[-1:])
        return waves

    def frames(self, feats):
        layers, _ = self.net.extract_features(feats)
        return layers[-1]

    def blocks(self):
        return [self.net.feature_extractor, self.net.encoder.feature_projection, *self.net.encoder.transformer.layers]


ENCODERS: dict[str, type[Encoder]] = {
    "cnn": CNNEncoder,
    "aisfx": AisfxEncoder,
    "panns": PannsEncoder,
    "torchaudio": TorchaudioEncoder,
}


def encoder_class(where: str, params: dict[str, Any]) -> type[Encoder]:
    kind = params.get("type")
    if kind not in ENCODERS:
        raise ConfigError(f"{where}.type: unknown encoder type {kind!r}; choose one of {', '.join(ENCODER_TYPES)}.")
    return ENCODERS[kind]


def encoder_sample_rate(params: dict[str, Any], where: str = "encoder") -> int:
    """The rate an encoder reads, known from config alone (the workflow plans the audio stores with it)."""
    cls = encoder_class(where, params)
    if cls is PannsEncoder:
        variant = params.get("variant", "cnn14")
        if variant not in VARIANTS:
            raise ConfigError(f"{where}.variant: must be one of {', '.join(VARIANTS)}, got {variant!r}")
        return VARIANTS[variant]["sample_rate"]
    if cls is TorchaudioEncoder:
        bundle = str(params.get("bundle", "wavlm_base_plus")).lower()
        if bundle not in checkpoints.TORCHAUDIO_BUNDLES:
            raise ConfigError(
                f"{where}.bundle: unknown bundle {bundle!r}; choose one of {checkpoints.TORCHAUDIO_BUNDLES}"
            )
        return int(checkpoints.torchaudio_bundle(bundle).sample_rate)
    if cls is CNNEncoder:
        return int(params.get("sample_rate", 16000))
    return cls.sample_rate


def check_encoder_options(params: dict[str, Any], where: str = "encoder") -> None:
    """ConfigError naming the key for an unknown encoder type or option (nothing is loaded)."""
    cls = encoder_class(where, params)
    allowed = keyword_options(cls)
    unknown = sorted(set(params) - {"type"} - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown option for encoder type {params['type']!r}; "
            f"allowed options: {', '.join(allowed) or '(none)'}."
        )


def build_encoder(params: dict[str, Any], where: str = "encoder") -> Encoder:
    check_encoder_options(params, where)
    return encoder_class(where, params)(**{k: v for k, v in params.items() if k != "type"})
