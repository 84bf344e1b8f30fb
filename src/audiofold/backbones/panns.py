"""PANNs CNN14 (Kong et al. 2020): AudioSet-tagging CNN whose 2048-d penultimate layer is the embedding.

The network is defined here with the official code's module names, so the official checkpoints
(``Cnn14_mAP=0.431.pth`` at 32 kHz, ``Cnn14_16k_mAP=0.438.pth`` at 16 kHz; state dict under "model")
load directly. Their STFT/mel front-end tensors are fixed by the settings below and are rebuilt
here (torch.stft + librosa mel filters), so those keys are skipped when loading.
"""

from __future__ import annotations

from typing import Any

import librosa
import numpy as np

from .. import checkpoints
from ..errors import ConfigError
from ..io import file_sha256
from .base import Backbone, BackboneOptionError

# Front-end settings of the two official checkpoints.
VARIANTS = {
    "cnn14": {"sample_rate": 32000, "n_fft": 1024, "hop": 320, "fmin": 50.0, "fmax": 14000.0, "weights": "panns_cnn14"},
    "cnn14_16k": {
        "sample_rate": 16000,
        "n_fft": 512,
        "hop": 160,
        "fmin": 50.0,
        "fmax": 8000.0,
        "weights": "panns_cnn14_16k",
    },
}
N_MELS = 64
CHANNELS = (64, 128, 256, 512, 1024, 2048)
FRONT_END_KEYS = ("spectrogram_extractor.", "logmel_extractor.")


def build_cnn14(n_classes: int = 527):
    """CNN14 with the official parameter names (bn0, conv_block1..6, fc1, fc_audioset)."""
    # deferred: torch takes seconds to load, and only the jobs that run a model need it
    import torch
    from torch import nn

    class ConvBlock(nn.Module):
        def __init__(self, c_in: int, c_out: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.bn2 = nn.BatchNorm2d(c_out)

        def forward(self, x, pool):
            x = torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))
            return nn.functional.avg_pool2d(x, pool) if pool != (1, 1) else x

    class Cnn14(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn0 = nn.BatchNorm2d(N_MELS)
            for i, (c_in, c_out) in enumerate(zip((1, *CHANNELS[:-1]), CHANNELS), start=1):
                self.add_module(f"conv_block{i}", ConvBlock(c_in, c_out))
            self.fc1 = nn.Linear(2048, 2048)
            self.fc_audioset = nn.Linear(2048, n_classes)

        def frames(self, logmel):
            """(B, T, 64) log-mel -> (B, T', 2048) time frames of the last conv block (mean over frequency)."""
            x = self.bn0(logmel.unsqueeze(1).transpose(1, 3)).transpose(1, 3)  # normalise each mel band
            for i in range(1, 7):
                x = getattr(self, f"conv_block{i}")(x, (2, 2) if i < 6 else (1, 1))
            return x.mean(dim=3).transpose(1, 2)

        def embedding(self, logmel):
            x = self.frames(logmel)
            x = x.max(dim=1).values + x.mean(dim=1)  # max + mean over time, as the official head
            return torch.relu(self.fc1(x))

    return Cnn14()


class PannsBackbone(Backbone):
    """PANNs CNN14 from a local official checkpoint; 2048-d (fc1 after max+mean time pooling)."""

    type_name = "panns"

    def __init__(
        self,
        *,
        variant: str = "cnn14",
        checkpoint: str | None = None,
        sample_rate: int | None = None,
        crop_seconds: float | None = None,
    ) -> None:
        kind = self.type_name
        if variant not in VARIANTS:
            raise BackboneOptionError(kind, "variant", f"must be one of {', '.join(VARIANTS)}, got {variant!r}")
        spec = VARIANTS[variant]
        if sample_rate is not None and sample_rate != spec["sample_rate"]:
            raise BackboneOptionError(
                kind, "sample_rate", f"{variant} takes {spec['sample_rate']} Hz; leave sample_rate out"
            )
        super().__init__(
            sample_rate=spec["sample_rate"], crop_seconds=crop_seconds, variant=variant, checkpoint=checkpoint
        )
        try:
            self.checkpoint_path = checkpoints.resolve_checkpoint(spec["weights"], checkpoint)
        except ConfigError as exc:
            raise BackboneOptionError(kind, "checkpoint", str(exc)) from None
        self.checkpoint_sha256 = file_sha256(self.checkpoint_path)
        self.spec = spec
        self.model = self._load()

        self.mel_basis = librosa.filters.mel(
            sr=spec["sample_rate"], n_fft=spec["n_fft"], n_mels=N_MELS, fmin=spec["fmin"], fmax=spec["fmax"]
        ).astype(np.float32)

    def _load(self):
        # deferred: torch takes seconds to load, and only the jobs that run a model need it
        import torch

        try:
            saved = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error naming the file
            raise BackboneOptionError(
                self.type_name, "checkpoint", f"cannot read {self.checkpoint_path}: {exc}"
            ) from None
        state = saved.get("model", saved) if isinstance(saved, dict) else saved
        state = {k: v for k, v in state.items() if not k.startswith(FRONT_END_KEYS)}
        model = build_cnn14(n_classes=state["fc_audioset.weight"].shape[0] if "fc_audioset.weight" in state else 527)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise BackboneOptionError(
                self.type_name,
                "checkpoint",
                f"{self.checkpoint_path} is not a CNN14 checkpoint ({str(exc).splitlines()[1].strip()})",
            ) from None
        return model.eval()

    @classmethod
    def default_sample_rate(cls, params: dict) -> int:
        """The variant's rate, for ``declared_sample_rate`` (planning the decode step before building)."""
        return VARIANTS.get(params.get("variant", "cnn14"), VARIANTS["cnn14"])["sample_rate"]

    @property
    def dim(self) -> int:
        return 2048

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "checkpoint": {"path": str(self.checkpoint_path), "sha256": self.checkpoint_sha256},
        }

    def weights_status(self) -> dict[str, Any]:
        return {"path": str(self.checkpoint_path), "sha256": self.checkpoint_sha256, "present": True}

    def log_mel(self, crops):
        """(B, T) tensor -> (B, frames, 64): power spectrogram (centred, reflect-padded Hann STFT), mel, dB re 1."""
        # deferred: torch takes seconds to load, and only the jobs that run a model need it
        import torch

        n_fft, hop = self.spec["n_fft"], self.spec["hop"]
        stft = torch.stft(
            crops, n_fft, hop, window=torch.hann_window(n_fft), center=True, pad_mode="reflect", return_complex=True
        )
        mel = torch.from_numpy(self.mel_basis) @ stft.abs().pow(2)
        return (10 * torch.log10(mel.clamp(min=1e-10))).transpose(1, 2)

    def embed_batch(self, crops: np.ndarray) -> np.ndarray:
        # deferred: torch takes seconds to load, and only the jobs that run a model need it
        import torch

        with torch.inference_mode():
            waves = torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32))
            return self.model.embedding(self.log_mel(waves)).numpy()
