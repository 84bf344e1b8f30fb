"""Self-supervised speech encoders from torchaudio bundles (WavLM, wav2vec 2.0, HuBERT), run offline.

The architecture comes from the bundle's hyper-parameters, the weights from a local checkpoint file
(``audiofold.checkpoints``); layer choice and pooling follow s3prl: one layer, a mean over a layer
range, or all layers kept so a head can learn layer weights.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from .. import checkpoints
from ..errors import ConfigError
from ..io import file_sha256
from .base import Backbone, BackboneOptionError, positive_int

POOLINGS = ("mean", "mean_std")
PRECISIONS = ("fp32", "int8", "bf16", "fp16")


def parse_layer(kind: str, layer: Any, n_layers: int) -> tuple[str, tuple[int, ...]]:
    """``layer`` option -> (mode, 0-based transformer layer indices); mode is "one", "mean" or "all".

    ``"last"``, an index (negative counts from the end), ``[start, stop]`` (mean over layers
    start..stop-1; seed 003 used ``[0, 10]``) or ``"all"`` (every layer kept: ``X_layers``).
    """
    if layer == "last":
        return "one", (n_layers - 1,)
    if layer == "all":
        return "all", tuple(range(n_layers))
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
        index = int(layer) + (n_layers if layer < 0 else 0)
        if not 0 <= index < n_layers:
            raise BackboneOptionError(kind, "layer", f"index {layer} is out of range for a {n_layers}-layer model")
        return "one", (index,)
    if (
        isinstance(layer, (list, tuple))
        and len(layer) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in layer)
    ):
        start, stop = (int(v) for v in layer)
        if not 0 <= start < stop <= n_layers:
            raise BackboneOptionError(
                kind, "layer", f"range [{start}, {stop}] must satisfy 0 <= start < stop <= {n_layers}"
            )
        return "mean", tuple(range(start, stop))
    raise BackboneOptionError(kind, "layer", f"must be 'last', 'all', a layer index or [start, stop], got {layer!r}")


def pick_device(kind: str, device: str) -> str:
    # deferred: torch takes seconds to load, and only the jobs that run a model need it
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise BackboneOptionError(kind, "device", f"must be cpu, cuda or auto, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise BackboneOptionError(kind, "device", "cuda was asked for but torch sees no GPU; use cpu or auto")
    return device


def check_precision(kind: str, precision: str, device: str) -> str:
    if precision not in PRECISIONS:
        raise BackboneOptionError(kind, "precision", f"must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "int8" and device != "cpu":
        raise BackboneOptionError(kind, "precision", "int8 dynamic quantization runs on CPU only; use bf16/fp16 on GPU")
    if precision in ("bf16", "fp16") and device != "cuda":
        raise BackboneOptionError(kind, "precision", f"{precision} autocast is for GPU; on CPU use fp32 or int8")
    return precision


def quantize_linear_int8(model):
    """int8 dynamic quantization of the Linear layers (weights int8, activations quantized per batch)."""
    # deferred: torch takes seconds to load, and only the jobs that run a model need it
    import torch

    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def autocast_context(device: str, precision: str):
    """bf16/fp16 autocast on GPU; a no-op context otherwise."""
    # deferred: torch takes seconds to load, and only the jobs that run a model need it
    import torch

    if precision in ("bf16", "fp16"):
        return torch.autocast(device_type=device, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return contextlib.nullcontext()


def pool_frames(frames, pooling: str, n_frames=None):
    """(B, ..., T, D) -> (B, ..., D) mean or (B, ..., 2D) mean and standard deviation over frames;
    with ``n_frames`` (B,) only row b's first ``n_frames[b]`` frames count (the rest is padding)."""
    # deferred: torch takes seconds to load, and only the jobs that run a model need it
    import torch

    if n_frames is None:
        mean = frames.mean(dim=-2)
        if pooling == "mean":
            return mean
        return torch.cat([mean, frames.std(dim=-2, unbiased=False)], dim=-1)
    n_time = frames.shape[-2]
    valid = torch.arange(n_time, device=frames.device)[None, :] < n_frames.to(frames.device)[:, None]  # (B, T)
    weight = valid.to(frames.dtype).view(frames.shape[0], *([1] * (frames.dim() - 3)), n_time, 1)
    count = weight.sum(dim=-2).clamp(min=1)
    mean = (frames * weight).sum(dim=-2) / count
    if pooling == "mean":
        return mean
    var = (((frames - mean.unsqueeze(-2)) ** 2) * weight).sum(dim=-2) / count
    return torch.cat([mean, var.sqrt()], dim=-1)


def layer_outputs(hidden, n_frames, layer_mode: str, pooling: str, keep_sequence: bool) -> dict[str, Any]:
    """Selected layers (B, L_sel, T, D) and valid frames per row (None: all) -> the shard outputs:
    X (pooled; with layer_mode "all" the mean of the per-layer poolings, kept as "layers") and the
    frame sequences trimmed to their rows (float16) when ``keep_sequence``."""
    if layer_mode == "all":
        per_layer = pool_frames(hidden, pooling, n_frames)  # (B, L, D)
        out = {"X": per_layer.mean(dim=1).numpy(), "layers": per_layer.numpy()}
        frames = hidden.permute(0, 2, 1, 3)  # (B, T, L, D)
    else:
        frames = hidden.mean(dim=1)  # one layer, or the mean over a layer range
        out = {"X": pool_frames(frames, pooling, n_frames).numpy()}
    if keep_sequence:
        ends = [len(f) for f in frames] if n_frames is None else n_frames.tolist()
        out["seq"] = [f[:end].numpy().astype(np.float16) for f, end in zip(frames, ends)]
    return out


class TorchaudioSSLBackbone(Backbone):
    """A torchaudio SSL bundle (``bundle: wavlm_base_plus``, ``hubert_large``, ...) from a local checkpoint."""

    type_name = "torchaudio"

    def __init__(
        self,
        *,
        bundle: str = "wavlm_base_plus",
        checkpoint: str | None = None,
        layer: Any = "last",
        pooling: str = "mean",
        keep_sequence: bool = False,
        arch: dict | None = None,
        device: str = "cpu",
        precision: str = "fp32",
        sample_rate: int = 16000,
        crop_seconds: float | None = None,
    ) -> None:
        kind = self.type_name
        if str(bundle).lower() not in checkpoints.TORCHAUDIO_BUNDLES:
            raise BackboneOptionError(
                kind, "bundle", f"unknown bundle {bundle!r}; choose one of {', '.join(checkpoints.TORCHAUDIO_BUNDLES)}"
            )
        bundle = str(bundle).lower()
        if pooling not in POOLINGS:
            raise BackboneOptionError(kind, "pooling", f"must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        spec = checkpoints.torchaudio_bundle(bundle)
        if sample_rate != spec.sample_rate:
            raise BackboneOptionError(
                kind,
                "sample_rate",
                f"{bundle} was trained at {spec.sample_rate:g} Hz; "
                f"set sample_rate: {int(spec.sample_rate)} (or leave it out)",
            )
        # Architecture overrides serve checkpoints of the same family with other sizes (and small test models).
        params = {**spec._params, **(arch or {}), "aux_num_out": None}  # the ASR head is not needed for features
        self.total_layers = positive_int(kind, "arch.encoder_num_layers", params["encoder_num_layers"])
        self.layer_mode, self.layer_indices = parse_layer(kind, layer, self.total_layers)
        super().__init__(
            sample_rate=sample_rate,
            crop_seconds=crop_seconds,
            bundle=bundle,
            checkpoint=checkpoint,
            layer=layer,
            pooling=pooling,
            keep_sequence=bool(keep_sequence),
            arch=dict(arch or {}),
            device=device,
            precision=precision,
        )
        self.device = pick_device(kind, device)
        self.precision = check_precision(kind, precision, self.device)
        self.pooling = pooling
        self.keeps_sequence = bool(keep_sequence)
        self.n_layers = len(self.layer_indices) if self.layer_mode == "all" else None
        self.encoder_dim = int(params["encoder_embed_dim"])
        # Resolved before any work: a missing checkpoint fails the build, not the 10 000th clip.
        try:
            self.checkpoint_path = checkpoints.resolve_checkpoint(bundle, checkpoint)
        except ConfigError as exc:
            raise BackboneOptionError(kind, "checkpoint", str(exc)) from None
        self.checkpoint_sha256 = file_sha256(self.checkpoint_path)
        self.normalize_waveform = bool(spec._normalize_waveform)
        # group_norm extractors (the base models) normalise the first conv layer over the whole input,
        # padding included, so padded batches run that CNN clip by clip to stay exact
        self.group_norm_extractor = params.get("extractor_mode", "group_norm") == "group_norm"
        # torchaudio's WavLM attention takes no padding mask: WavLM batches equal lengths only
        # (the hf backbone's WavLM masks padding)
        self.accepts_lengths = spec._model_type != "WavLM"
        self.model = self._load(spec._model_type, params)

    def _load(self, model_type: str, params: dict):
        # deferred: torch takes seconds to load, and only the jobs that run a model need it
        import torch
        from torchaudio.models import wav2vec2_model, wavlm_model

        factory = {"WavLM": wavlm_model, "Wav2Vec2": wav2vec2_model}[model_type]
        model = factory(**params)
        try:
            state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error naming the file
            raise BackboneOptionError(
                self.type_name, "checkpoint", f"cannot read {self.checkpoint_path}: {exc}"
            ) from None
        state = {k: v for k, v in state.items() if not k.startswith("aux.")}
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).splitlines()[1:3]
            raise BackboneOptionError(
                self.type_name,
                "checkpoint",
                f"{self.checkpoint_path} does not fit the "
                f"{self.params['bundle']} architecture ({'; '.join(s.strip() for s in first)}); check bundle "
                f"(and arch) against the checkpoint.",
            ) from None
        model.eval()
        if self.precision == "int8":
            model = quantize_linear_int8(model)
        return model.to(self.device)

    @property
    def dim(self) -> int:
        return self.encoder_dim * (2 if self.pooling == "mean_std" else 1)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "checkpoint": {"path": str(self.checkpoint_path), "sha256": self.checkpoint_sha256},
            "layers": list(self.layer_indices),
            "layer_mode": self.layer_mode,
        }

    def weights_status(self) -> dict[str, Any]:
        """For ``audiofold doctor``: the checkpoint in use and its sha256 (build fails when it is missing)."""
        return {"path": str(self.checkpoint_path), "sha256": self.checkpoint_sha256, "present": True}

    def _hidden(self, crops: np.ndarray, lengths: np.ndarray | None = None):
        """Selected transformer layer outputs, float32 on CPU: (B, L_sel, T, D), and the valid frame
        count per row ((B,) tensor, None without ``lengths``)."""
        # deferred: torch takes seconds to load, and only the jobs that run a model need it
        import torch
        import torch.nn.functional as F

        waves = torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32))
        valid = None if lengths is None else torch.as_tensor(np.asarray(lengths), dtype=torch.long)
        if self.normalize_waveform:  # the large models were trained on per-clip normalised audio
            if valid is None:
                waves = F.layer_norm(waves, waves.shape[-1:])
            else:
                waves = torch.stack(
                    [F.pad(F.layer_norm(w[:n], (int(n),)), (0, waves.shape[-1] - int(n))) for w, n in zip(waves, valid)]
                )
        if self.device == "cuda":
            waves = waves.pin_memory().to(self.device, non_blocking=True)
        # the encoder stops after the deepest layer asked for: early layers cost less
        num_layers = max(self.layer_indices) + 1
        with torch.inference_mode(), autocast_context(self.device, self.precision):
            if valid is None:
                layers, n_frames = self.model.extract_features(waves, num_layers=num_layers)
            else:
                features, n_frames = self._padded_features(waves, valid.to(self.device))
                layers = self.model.encoder.extract_features(features, n_frames, num_layers)
            hidden = torch.stack([layers[i] for i in self.layer_indices], dim=1)
        return hidden.float().cpu(), None if n_frames is None else n_frames.cpu()

    def _padded_features(self, waves, valid):
        """CNN features of a zero-padded batch, (B, T, C) and valid frames (B,), as unpadded rows give them."""
        if not self.group_norm_extractor:  # per-frame layer norm: a frame inside the clip never sees padding
            return self.model.feature_extractor(waves, valid)
        # deferred: torch takes seconds to load, and only the jobs that run a model need it
        from torch.nn.utils.rnn import pad_sequence

        rows = [self.model.feature_extractor(w[None, : int(n)], None)[0][0] for w, n in zip(waves, valid)]
        n_frames = valid.new_tensor([len(r) for r in rows])
        return pad_sequence(rows, batch_first=True), n_frames

    def embed_outputs(self, crops: np.ndarray, lengths: np.ndarray | None = None) -> dict[str, Any]:
        hidden, n_frames = self._hidden(crops, lengths)  # (B, L_sel, T, D)
        return layer_outputs(hidden, n_frames, self.layer_mode, self.pooling, self.keeps_sequence)

    def embed_batch(self, crops: np.ndarray) -> np.ndarray:
        return self.embed_outputs(crops)["X"]


def tiny_arch(num_layers: int = 2, dim: int = 32) -> dict:
    """Architecture overrides for a small model of the same family (tests, quick experiments)."""
    return {
        "extractor_conv_layer_config": [
            (16, 10, 5),
            (16, 3, 2),
            (16, 3, 2),
            (16, 3, 2),
            (16, 3, 2),
            (16, 2, 2),
            (16, 2, 2),
        ],
        "encoder_embed_dim": dim,
        "encoder_num_layers": num_layers,
        "encoder_num_heads": 2,
        "encoder_pos_conv_kernel": 16,
        "encoder_pos_conv_groups": 2,
        "encoder_ff_interm_features": 2 * dim,
    }


def save_random_checkpoint(bundle: str, path: str | Path, arch: dict, seed: int = 0) -> Path:
    """A randomly initialised model of ``bundle``'s family saved as the bundle's checkpoint format
    (a plain state dict), for tests and speed benchmarks without downloads."""
    # deferred: torch takes seconds to load, and only the jobs that run a model need it
    import torch
    from torchaudio.models import wav2vec2_model, wavlm_model

    spec = checkpoints.torchaudio_bundle(bundle)
    torch.manual_seed(seed)
    factory = {"WavLM": wavlm_model, "Wav2Vec2": wav2vec2_model}[spec._model_type]
    model = factory(**{**spec._params, **arch})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path
