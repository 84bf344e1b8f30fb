"""PromptHead, seed 000: learnable prompt tokens attend over frame-level features.

Prompts (default 9) query the frames with multi-head attention (default 6 heads) after a
projection to ``d_model`` (so the head count always divides the width), are averaged, and go
through LayerNorm -> Linear -> ReLU -> Dropout -> Linear -> LayerNorm. Ratings get a classifier
over the discrete scale values and a regression output; loss
W_CE*CE(label smoothing) + W_KLD*KL(Gaussian label distribution || softmax) + W_MSE*MSE(reg)
+ W_CONS*MSE(EV, stop-grad(reg)). Variants: ``ev`` (expected value of the class distribution),
``reg``, ``mix`` = (ev + reg) / 2 and ``knn`` (cosine kNN on the pooled prompt embedding).
Classification uses the CE term only and returns probabilities (``main``) and ``knn``.
Mixup (``mixup_alpha``) mixes every loss term with the same lam; frame masking (``time_masks``,
``feature_masks``) applies to ``inputs: sequence``; both only in training, off by default.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..metrics import METRICS
from ..tasks import TaskSpec
from .base import HeadOptionError
from .knn import KNNHead
from .torch_base import LayerWeights, TorchHead


def scale_values(scale: dict | None, n_default: int = 11) -> np.ndarray:
    """The discrete label values of a rating scale (``n_default`` even steps when it has no step)."""
    lo, hi, step = float(scale["min"]), float(scale["max"]), scale.get("step")
    if not step:
        return np.linspace(lo, hi, n_default)
    return lo + step * np.arange(int(round((hi - lo) / step)) + 1)


def gaussian_label_distribution(y: torch.Tensor, values: torch.Tensor, sigma: float) -> torch.Tensor:
    """(n, V) target: a Gaussian over the scale values centred on each label, rows summing to 1."""
    logits = -0.5 * ((values[None, :] - y.reshape(-1, 1)) / sigma) ** 2
    return torch.softmax(logits, dim=1)


class _PromptNet(nn.Module):
    def __init__(
        self,
        frame_shape,
        n_classes: int,
        regression: bool,
        n_prompts: int,
        n_heads: int,
        d_model: int,
        hidden: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.layer_weights = LayerWeights(frame_shape[0]) if len(frame_shape) == 2 else None
        self.proj = nn.Linear(frame_shape[-1], d_model)
        self.prompts = nn.Parameter(torch.randn(n_prompts, d_model) * 0.02)
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.body = nn.Sequential(
            nn.LayerNorm(d_model),
            nn.Linear(d_model, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden),
        )
        self.classifier = nn.Linear(hidden, n_classes)
        self.regressor = nn.Linear(hidden, 1) if regression else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if self.layer_weights is not None:
            x = self.layer_weights(x)
        if x.ndim == 2:  # pooled features: a one-frame sequence
            x = x[:, None, :]
        frames = self.proj(x)
        queries = self.prompts[None].expand(len(frames), -1, -1)
        attended, _ = self.attn(
            queries, frames, frames, key_padding_mask=None if mask is None else ~mask, need_weights=False
        )
        emb = self.body(attended.mean(dim=1))
        out = {"logits": self.classifier(emb), "emb": emb}
        if self.regressor is not None:
            out["reg"] = self.regressor(emb).squeeze(-1)
        return out


class PromptHead(TorchHead):
    type_name = "prompt"

    def __init__(
        self,
        task: TaskSpec,
        seed: int = 0,
        *,
        n_prompts: int = 9,
        n_heads: int = 6,
        d_model: int = 192,
        hidden: int = 256,
        dropout: float = 0.1,
        label_smoothing: float = 0.05,
        sigma: float = 0.5,
        w_ce: float = 0.55,
        w_kld: float = 0.45,
        w_mse: float = 0.35,
        w_cons: float = 0.10,
        knn_k: int = 11,
        knn_temperature: float = 0.15,
        mixup_alpha: float = 0.0,
        mixup_prob: float = 0.5,
        time_masks: int = 0,
        time_mask_frac: float = 0.1,
        feature_masks: int = 0,
        feature_mask_width: int = 20,
        inputs: str = "sequence",
        epochs: int = 40,
        batch_size: int = 32,
        lr: float = 5e-4,
        weight_decay: float = 1e-4,
        grad_clip: float = 2.0,
        patience: int = 5,
        inner_val_fraction: float = 0.15,
        device: str = "auto",
    ) -> None:
        if task.kind not in ("regression", "classification"):
            raise ConfigError(
                f"head type 'prompt' supports the regression (rating scale) and classification kinds, "
                f"not {task.kind!r}; use va (multitarget) or mlp (multilabel)."
            )
        if d_model % n_heads:
            raise HeadOptionError(self.type_name, "d_model", f"must be a multiple of n_heads={n_heads}, got {d_model}.")
        super().__init__(
            task,
            seed,
            n_prompts=n_prompts,
            n_heads=n_heads,
            d_model=d_model,
            hidden=hidden,
            dropout=dropout,
            label_smoothing=label_smoothing,
            sigma=sigma,
            w_ce=w_ce,
            w_kld=w_kld,
            w_mse=w_mse,
            w_cons=w_cons,
            knn_k=knn_k,
            knn_temperature=knn_temperature,
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
        self.rating = task.kind == "regression"
        self.values = scale_values(task.scale) if self.rating else None
        self.knn = KNNHead(task, seed, k=knn_k, temperature=knn_temperature)

    def build_module(self, frame_shape):
        n_classes = len(self.values) if self.rating else len(self.task.classes)
        p = self.params
        return _PromptNet(
            frame_shape, n_classes, self.rating, p["n_prompts"], p["n_heads"], p["d_model"], p["hidden"], p["dropout"]
        )

    def prepare_targets(self, y):
        return np.asarray(y, dtype=np.float32).reshape(-1) if self.rating else np.asarray(y, dtype=np.int64)

    def stratify_on(self, y):
        return self._class_index(y) if self.rating else y

    def _class_index(self, y):
        return np.abs(np.asarray(y).reshape(-1, 1) - self.values[None, :]).argmin(axis=1)

    def make_scheduler(self, optimizer, steps_per_epoch):
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.params["epochs"] * steps_per_epoch)

    def loss(self, out, y):
        p = self.params
        logits = out["logits"].float()
        if not self.rating:
            return nn.functional.cross_entropy(logits, y, label_smoothing=p["label_smoothing"])
        values = torch.as_tensor(self.values, dtype=torch.float32, device=logits.device)
        classes = torch.as_tensor(self._class_index(y.cpu().numpy()), device=logits.device)
        log_probs = torch.log_softmax(logits, dim=1)
        ev = (log_probs.exp() * values).sum(dim=1)
        reg = out["reg"].float()
        target = gaussian_label_distribution(y, values, p["sigma"])
        return (
            p["w_ce"] * nn.functional.cross_entropy(logits, classes, label_smoothing=p["label_smoothing"])
            + p["w_kld"] * nn.functional.kl_div(log_probs, target, reduction="batchmean")
            + p["w_mse"] * nn.functional.mse_loss(reg, y)
            + p["w_cons"] * nn.functional.mse_loss(ev, reg.detach())
        )

    def outputs_to_variants(self, out):
        logits = out["logits"].astype(np.float64)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        variants = {"emb": out["emb"]}
        if self.rating:
            ev, reg = probs @ self.values, out["reg"].astype(np.float64)
            variants.update(ev=ev[:, None], reg=reg[:, None], mix=((ev + reg) / 2)[:, None])
        else:
            variants["main"] = probs
        return variants

    def inner_metrics(self, variants, y):
        if self.rating:
            rmse = float(np.sqrt(np.mean((variants["mix"][:, 0] - y) ** 2)))
            return {
                "score": rmse,
                "rmse_mix": rmse,
                "rmse_ev": float(np.sqrt(np.mean((variants["ev"][:, 0] - y) ** 2))),
                "rmse_reg": float(np.sqrt(np.mean((variants["reg"][:, 0] - y) ** 2))),
            }
        log_loss = METRICS["log_loss"](y, variants["main"], self.task)
        return {
            "score": log_loss,
            "log_loss": log_loss,
            "accuracy": METRICS["accuracy"](y, variants["main"], self.task),
        }

    def fit(self, X, y, groups=None):
        super().fit(X, y, groups)
        # kNN over the best-epoch prompt embedding of the whole training fold
        emb = super().predict(X)["emb"]
        self.knn.fit(emb, y)
        return self

    def predict(self, X):
        variants = super().predict(X)
        variants["knn"] = self.knn.predict(variants.pop("emb"))["main"]
        return variants
