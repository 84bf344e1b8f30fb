"""Two-head (valence/arousal style) regressor, seed 003: one MLP per target on pooled features.

Loss = MSE + lambda_var * variance penalty + lambda_corr * correlation penalty. The variance
penalty (per target, relu(std(y) - std(pred))) stops the predictions from collapsing to the
mean; the correlation penalty (squared Pearson r between each pair of predicted targets) keeps
the heads from predicting coupled values. CyclicLR triangular2, AdamW, grad clip 1.0.

Both penalties are batch statistics, undefined on a batch of one row (the last batch whenever the
inner-fit size is 1 mod ``batch_size``); there they are zero and that row trains on MSE alone.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..tasks import TaskSpec
from .torch_base import Pooled, TorchHead, mlp

# Rows a batch needs before its spread and correlations mean anything. Skipping the terms on a smaller
# batch (rather than drop_last) keeps every row in training, also when the inner-fit set is smaller
# than one batch, and leaves a one-row batch its MSE gradient; the unbiased std of one row is NaN.
MIN_ROWS_FOR_SPREAD = 2


def variance_penalty(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over targets of relu(std(y) - std(pred)): zero once predictions are as spread as the targets
    (and on a batch of fewer than two rows, which has no spread)."""
    if len(pred) < MIN_ROWS_FOR_SPREAD:
        return pred.new_zeros(())
    return torch.relu(y.std(dim=0) - pred.std(dim=0)).mean()


def correlation_penalty(pred: torch.Tensor) -> torch.Tensor:
    """Mean squared Pearson r between every pair of predicted targets (0 for a single target or row)."""
    if pred.shape[1] < 2 or len(pred) < MIN_ROWS_FOR_SPREAD:
        return pred.new_zeros(())
    centred = pred - pred.mean(dim=0)
    normed = centred / (centred.norm(dim=0) + 1e-8)
    pairs = list(itertools.combinations(range(pred.shape[1]), 2))
    return torch.stack([(normed[:, a] * normed[:, b]).sum() ** 2 for a, b in pairs]).mean()


class _PerTargetHeads(nn.Module):
    def __init__(self, frame_shape, n_targets: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.pool = Pooled(frame_shape)
        self.heads = nn.ModuleList(mlp(self.pool.dim, hidden, 1, dropout) for _ in range(n_targets))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        z = self.pool(x)
        return torch.cat([head(z) for head in self.heads], dim=1)


class VAHead(TorchHead):
    type_name = "va"

    def __init__(
        self,
        task: TaskSpec,
        seed: int = 3,
        *,
        hidden: int = 256,
        dropout: float = 0.2,
        lambda_var: float = 0.05,
        lambda_corr: float = 0.05,
        base_lr: float = 3e-5,
        max_lr: float = 1e-3,
        inputs: str = "pooled",
        epochs: int = 60,
        batch_size: int = 32,
        weight_decay: float = 1e-4,
        grad_clip: float = 1.0,
        patience: int = 10,
        inner_val_fraction: float = 0.15,
        device: str = "auto",
    ) -> None:
        if not task.is_regression:
            raise ConfigError(
                f"head type 'va' supports the regression and multitarget kinds, not {task.kind!r}; "
                "use linear, knn, lgbm or mlp for class kinds."
            )
        if inputs == "sequence":
            raise ConfigError("heads.va.inputs: 'va' works on pooled features; use pooled or layers.")
        super().__init__(
            task,
            seed,
            hidden=hidden,
            dropout=dropout,
            lambda_var=lambda_var,
            lambda_corr=lambda_corr,
            base_lr=base_lr,
            max_lr=max_lr,
            lr=max_lr,
            inputs=inputs,
            epochs=epochs,
            batch_size=batch_size,
            weight_decay=weight_decay,
            grad_clip=grad_clip,
            patience=patience,
            inner_val_fraction=inner_val_fraction,
            device=device,
        )

    def build_module(self, frame_shape):
        return _PerTargetHeads(frame_shape, self.task.n_outputs, self.params["hidden"], self.params["dropout"])

    def prepare_targets(self, y):
        y = np.asarray(y, dtype=np.float32).reshape(len(y), -1)
        # standardised targets train evenly across targets; predictions are mapped back
        self.y_mean, self.y_std = y.mean(axis=0), y.std(axis=0) + 1e-6
        return (y - self.y_mean) / self.y_std

    def make_scheduler(self, optimizer, steps_per_epoch):
        return torch.optim.lr_scheduler.CyclicLR(
            optimizer,
            base_lr=self.params["base_lr"],
            max_lr=self.params["max_lr"],
            step_size_up=max(2 * steps_per_epoch, 1),
            mode="triangular2",
            cycle_momentum=False,
        )

    def loss(self, out, y):
        out = out.float()
        return (
            nn.functional.mse_loss(out, y)
            + self.params["lambda_var"] * variance_penalty(out, y)
            + self.params["lambda_corr"] * correlation_penalty(out)
        )

    def outputs_to_variants(self, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"main": out["out"].astype(np.float64) * self.y_std + self.y_mean}

    def inner_metrics(self, variants, y):
        y = y * self.y_std + self.y_mean
        rmse = float(np.sqrt(np.mean((variants["main"] - y) ** 2)))
        return {"score": rmse, "rmse": rmse}
