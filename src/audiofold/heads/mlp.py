"""Multi-label MLP head, seed 002: BCE with inverse-sqrt class weights and label smoothing on positives.

On ``inputs: sequence`` the frames are pooled by learned attention before the MLP; on
``inputs: layers`` a learnable softmax layer mix comes first. Training augmentation as in the seed,
off by default: ``mixup_alpha`` / ``mixup_prob`` (mixup of embeddings and multi-hot targets) and,
on sequences, ``time_masks`` / ``feature_masks`` (SpecAugment-style; torch_base.mask_frames).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..metrics import METRICS
from ..tasks import TaskSpec
from .torch_base import LayerWeights, TorchHead, mlp


def inverse_sqrt_class_weights(y: np.ndarray) -> np.ndarray:
    """1/sqrt(positives per class) (at least one), normalised to mean 1."""
    counts = np.maximum(np.asarray(y).sum(axis=0), 1.0)
    weights = 1.0 / np.sqrt(counts)
    return (weights / weights.mean()).astype(np.float32)


def smooth_positives(y: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Positives become 1 - smoothing; negatives stay 0 (absent tags are trusted more than present ones)."""
    return y * (1.0 - smoothing)


class AttentionPool(nn.Module):
    """Masked softmax attention over frames: (B, T, D) -> (B, D)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.score(x).squeeze(-1).masked_fill(~mask, float("-inf"))
        return torch.einsum("bt,btd->bd", torch.softmax(logits, dim=1), x)


class _MLP(nn.Module):
    def __init__(self, frame_shape, n_out: int, hidden: int, dropout: float, sequence: bool) -> None:
        super().__init__()
        self.layer_weights = LayerWeights(frame_shape[0]) if len(frame_shape) == 2 else None
        dim = frame_shape[-1]
        self.pool = AttentionPool(dim) if sequence else None
        self.net = nn.Sequential(nn.LayerNorm(dim), mlp(dim, hidden, n_out, dropout))

    def forward(self, x, mask=None):
        if self.layer_weights is not None:
            x = self.layer_weights(x)
        if self.pool is not None:
            x = self.pool(x, mask)
        return self.net(x)


class MLPHead(TorchHead):
    type_name = "mlp"

    def __init__(
        self,
        task: TaskSpec,
        seed: int = 2,
        *,
        hidden: int = 512,
        dropout: float = 0.3,
        label_smoothing: float = 0.05,
        mixup_alpha: float = 0.0,
        mixup_prob: float = 0.5,
        time_masks: int = 0,
        time_mask_frac: float = 0.1,
        feature_masks: int = 0,
        feature_mask_width: int = 20,
        inputs: str = "pooled",
        epochs: int = 40,
        batch_size: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        grad_clip: float = 1.0,
        patience: int = 5,
        inner_val_fraction: float = 0.15,
        device: str = "auto",
    ) -> None:
        if task.kind != "multilabel":
            raise ConfigError(
                f"head type 'mlp' supports the multilabel kind, not {task.kind!r}; "
                "use prompt (classification, ratings), va (multitarget) or lgbm."
            )
        super().__init__(
            task,
            seed,
            hidden=hidden,
            dropout=dropout,
            label_smoothing=label_smoothing,
            mixup_alpha=mixup_alpha,
            mixup_prob=mixup_prob,
            time_masks=time_masks,
            time_mask_frac=time_mask_frac,
            feature_masks=feature_masks,
            feature_mask_width=feature_mask_width,
            inputs=inputs,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            grad_clip=grad_clip,
            patience=patience,
            inner_val_fraction=inner_val_fraction,
            device=device,
        )

    def build_module(self, frame_shape):
        return _MLP(
            frame_shape,
            len(self.task.classes),
            self.params["hidden"],
            self.params["dropout"],
            sequence=self.inputs == "sequence",
        )

    def prepare_targets(self, y):
        y = (np.asarray(y) > 0.5).astype(np.float32)
        self.class_weights = inverse_sqrt_class_weights(y)
        return y

    def loss(self, out, y):
        weights = torch.as_tensor(self.class_weights, device=out.device)
        target = smooth_positives(y, self.params["label_smoothing"])
        per_entry = nn.functional.binary_cross_entropy_with_logits(out.float(), target, reduction="none")
        return (per_entry * weights).mean()

    def outputs_to_variants(self, out):
        return {"main": 1.0 / (1.0 + np.exp(-out["out"].astype(np.float64)))}

    def inner_metrics(self, variants, y):
        lwlrap = METRICS["lwlrap"](y, variants["main"], self.task)
        return {"score": -lwlrap, "lwlrap": lwlrap}
