"""Shared machinery of the torch heads: inputs, learnable layer weights, a seeded training loop.

A torch head trains on an inner split carved from its training fold (the fold's own validation
rows never reach ``fit``), keeps the weights of the best inner-validation epoch (that state is
what joblib pickles with the head, so the saved model *is* the best-epoch checkpoint), logs one
line of inner-validation metrics per epoch and shows a tqdm bar over epochs. An epoch whose training
loss, inner-validation predictions or score is not finite is never the best one; when no epoch is
finite, ``fit`` raises TrainingError instead of keeping a NaN model.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import nn
from tqdm.auto import tqdm

from ..errors import TrainingError
from ..tasks import TaskSpec
from .base import Head, HeadOptionError, require_positive

log = logging.getLogger(__name__)

INPUTS = ("pooled", "layers", "sequence")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> the GPU when torch sees one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_torch(seed: int) -> torch.Generator:
    """Seed torch globally, ask for deterministic kernels, return a generator for the DataLoader."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


class LayerWeights(nn.Module):
    """Softmax-weighted sum over the layer axis (s3prl's weighted-sum featurizer): (..., L, D) -> (..., D)."""

    def __init__(self, n_layers: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n_layers))  # uniform mix at the start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.logits, dim=0)
        return torch.einsum("...ld,l->...d", x, weights)


def pad_sequences(items: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T_max, ...) zero-padded frames and a (B, T_max) bool mask that is True on real frames."""
    lengths = [max(len(i), 1) for i in items]
    frame_shape = items[0].shape[1:]
    out = np.zeros((len(items), max(lengths), *frame_shape), dtype=np.float32)
    mask = np.zeros((len(items), max(lengths)), dtype=bool)
    for row, item in enumerate(items):
        out[row, : len(item)] = item
        mask[row, : lengths[row]] = True  # an empty clip keeps one zero frame so attention has a key
    return torch.from_numpy(out), torch.from_numpy(mask)


def mixup(
    x: torch.Tensor, mask: torch.Tensor | None, rng: np.random.Generator, alpha: float
) -> tuple[torch.Tensor, torch.Tensor | None, float, torch.Tensor]:
    """Mixup (Zhang et al. 2018) in embedding space: each row mixed with a partner from the same batch,
    lam * x + (1 - lam) * x[perm] with lam ~ Beta(alpha, alpha). Returns the mixed batch, the padding
    mask of the pair (a frame is real if it is real in either), lam and perm; the caller mixes the
    loss over the two targets with the same lam."""
    lam = float(rng.beta(alpha, alpha))
    perm = torch.from_numpy(rng.permutation(len(x)))
    mixed = lam * x + (1.0 - lam) * x[perm]
    return mixed, None if mask is None else mask | mask[perm], lam, perm


def mask_frames(
    x: torch.Tensor,
    mask: torch.Tensor,
    rng: np.random.Generator,
    time_masks: int = 0,
    time_mask_frac: float = 0.1,
    feature_masks: int = 0,
    feature_mask_width: int = 20,
) -> torch.Tensor:
    """SpecAugment-style masking of zero-padded frame sequences (B, T, ..., D) with their (B, T) mask.

    Per clip, ``time_masks`` spans of 0 .. ``time_mask_frac`` x its real frames and ``feature_masks``
    bands of 0 .. ``feature_mask_width`` of the last (feature) axis are set to zero. Spans lie inside the
    clip's real frames (padding is not counted), and a span or band that would hide the last visible
    frame or feature of a clip is skipped, so no clip is ever masked whole. Returns a new tensor.
    """
    x = x.clone()
    dim = x.shape[-1]
    for row, length in enumerate(mask.sum(dim=1).tolist()):
        hidden = np.zeros(length, dtype=bool)
        for _ in range(time_masks):
            width = int(rng.integers(0, int(time_mask_frac * length) + 1))
            start = int(rng.integers(0, length - width + 1))
            span = hidden.copy()
            span[start : start + width] = True
            if not span.all():
                hidden = span
        bands = np.zeros(dim, dtype=bool)
        for _ in range(feature_masks):
            width = int(rng.integers(0, min(feature_mask_width, dim) + 1))
            start = int(rng.integers(0, dim - width + 1))
            band = bands.copy()
            band[start : start + width] = True
            if not band.all():
                bands = band
        frames = x[row, :length]
        frames[torch.from_numpy(hidden)] = 0.0
        frames[..., torch.from_numpy(bands)] = 0.0
    return x


def augment_options(head_type: str, params: dict[str, Any]) -> None:
    """HeadOptionError naming the key for a bad mixup / masking option (those a head takes)."""
    if "mixup_alpha" in params:
        alpha = params["mixup_alpha"]
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
            raise HeadOptionError(head_type, "mixup_alpha", f"must be a number >= 0 (0: no mixup), got {alpha!r}.")
        prob = params["mixup_prob"]
        if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0 <= prob <= 1:
            raise HeadOptionError(head_type, "mixup_prob", f"must be a number in [0, 1], got {prob!r}.")
    for count in ("time_masks", "feature_masks"):
        if count not in params:
            continue
        n = params[count]
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise HeadOptionError(head_type, count, f"must be an integer >= 0 (0: no masks), got {n!r}.")
        if n and params["inputs"] != "sequence":
            raise HeadOptionError(
                head_type, count, f"masks frames of inputs: sequence, but this head has inputs: {params['inputs']}."
            )
    if "time_mask_frac" in params:
        frac = params["time_mask_frac"]
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1:
            raise HeadOptionError(head_type, "time_mask_frac", f"must be a number in (0, 1), got {frac!r}.")
    if "feature_mask_width" in params:
        require_positive(head_type, "feature_mask_width", params["feature_mask_width"], integer=True)


class TorchHead(Head):
    """Base of the torch heads. Subclasses implement ``build_module``, ``loss``, ``outputs_to_variants``
    and ``inner_metrics`` (lower ``metrics["score"]`` is better)."""

    inputs = "pooled"

    def __init__(self, task: TaskSpec, seed: int = 0, **params: Any) -> None:
        for key in ("epochs", "batch_size", "patience"):
            require_positive(self.type_name, key, params[key], integer=True)
        for key in ("lr", "grad_clip"):
            require_positive(self.type_name, key, params[key])
        if not params["weight_decay"] >= 0:
            raise HeadOptionError(self.type_name, "weight_decay", "must be >= 0.")
        if not 0 < params["inner_val_fraction"] < 0.5:
            raise HeadOptionError(self.type_name, "inner_val_fraction", "must be in (0, 0.5).")
        if params["inputs"] not in INPUTS:
            raise HeadOptionError(
                self.type_name, "inputs", f"must be one of {', '.join(INPUTS)}, got {params['inputs']!r}."
            )
        augment_options(self.type_name, params)
        super().__init__(task, seed, **params)
        self.inputs = params["inputs"]
        self.module: nn.Module | None = None
        self.history: list[dict[str, float]] = []

    # -- subclass hooks -------------------------------------------------------------------
    def build_module(self, frame_shape: tuple[int, ...]) -> nn.Module:
        raise NotImplementedError

    def prepare_targets(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float32)

    def loss(self, out: Any, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def outputs_to_variants(self, out: Any) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def inner_metrics(self, variants: dict[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
        raise NotImplementedError

    def make_scheduler(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> Any:
        return None

    def stratify_on(self, y: np.ndarray) -> np.ndarray | None:
        return None

    # -- shared training loop ---------------------------------------------------------------
    def _rows(self, X: Any) -> list[np.ndarray]:
        if self.inputs == "sequence":
            return [np.asarray(x, dtype=np.float32) for x in X]
        X = np.asarray(X, dtype=np.float32)
        expected = 3 if self.inputs == "layers" else 2
        if X.ndim != expected:
            raise ValueError(
                f"head {self.type_name} with inputs={self.inputs} needs a {expected}-d array, got {X.shape}"
            )
        return list(X)

    def _batch(self, rows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.inputs == "sequence":
            return pad_sequences(rows)
        return torch.from_numpy(np.stack(rows)).float(), None

    def _forward_all(self, rows: list[np.ndarray], device: torch.device) -> dict[str, np.ndarray]:
        self.module.eval()
        outs = []
        with torch.no_grad():
            for start in range(0, len(rows), self.params["batch_size"]):
                x, mask = self._batch(rows[start : start + self.params["batch_size"]])
                out = self.module(x.to(device), None if mask is None else mask.to(device))
                outs.append(self._to_numpy(out))
        merged = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]} if outs else {}
        return self.outputs_to_variants(merged)

    @staticmethod
    def _to_numpy(out: Any) -> dict[str, np.ndarray]:
        if isinstance(out, torch.Tensor):
            out = {"out": out}
        return {k: v.detach().float().cpu().numpy() for k, v in out.items()}

    def _split(self, index: np.ndarray, stratify: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        size = self.params["inner_val_fraction"]
        try:
            return train_test_split(index, test_size=size, random_state=self.seed, stratify=stratify)
        except ValueError:  # a class too rare to stratify on: plain random split
            return train_test_split(index, test_size=size, random_state=self.seed)

    def inner_split(self, targets: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(inner-fit, inner-validation) row indices. With groups (speakers, or a clip's crops) whole
        groups go to one side, stratified on each group's first row, so early stopping never scores
        a row whose group-mates it trained on."""
        stratify = self.stratify_on(targets)
        if groups is not None:
            names, member = np.unique(np.asarray(groups), return_inverse=True)
            if len(names) >= 2:
                first = np.unique(member, return_index=True)[1]
                fit_groups, _ = self._split(np.arange(len(names)), None if stratify is None else stratify[first])
                in_fit = np.isin(member, fit_groups)
                return np.flatnonzero(in_fit), np.flatnonzero(~in_fit)
        return self._split(np.arange(len(targets)), stratify)

    def augment(
        self, x: torch.Tensor, mask: torch.Tensor | None, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[float, torch.Tensor] | None]:
        """A training batch after frame masking and mixup (the options a head takes; none by default):
        (x, mask, (lam, perm) when mixed). Inner validation and predict never pass through here."""
        p = self.params
        if mask is not None and (p.get("time_masks", 0) or p.get("feature_masks", 0)):
            x = mask_frames(
                x, mask, rng, p["time_masks"], p["time_mask_frac"], p["feature_masks"], p["feature_mask_width"]
            )
        # draw every batch, mixed or not, so the random stream does not depend on the outcomes
        if p.get("mixup_alpha", 0) > 0 and rng.random() < p["mixup_prob"] and len(x) > 1:
            x, mask, lam, perm = mixup(x, mask, rng, p["mixup_alpha"])
            return x, mask, (lam, perm)
        return x, mask, None

    def fit(self, X: Any, y: np.ndarray, groups: np.ndarray | None = None) -> TorchHead:
        generator = seed_torch(self.seed)
        augment_rng = np.random.default_rng(self.seed)  # its own stream: the shuffling stays as without it
        device = resolve_device(self.params["device"])
        rows = self._rows(X)
        targets = self.prepare_targets(y)
        fit_idx, val_idx = self.inner_split(targets, groups)
        frame_shape = rows[0].shape[1:] if self.inputs == "sequence" else rows[0].shape
        self.module = self.build_module(tuple(frame_shape)).to(device)
        optimizer = torch.optim.AdamW(
            self.module.parameters(), lr=self.params["lr"], weight_decay=self.params["weight_decay"]
        )
        batch_size = self.params["batch_size"]
        loader = torch.utils.data.DataLoader(
            fit_idx.tolist(), batch_size=batch_size, shuffle=True, generator=generator, collate_fn=lambda ids: ids
        )
        scheduler = self.make_scheduler(optimizer, max(len(loader), 1))
        use_amp = device.type == "cuda"
        best_score, best_state, stale = np.inf, None, 0
        self.history, self.best_epoch = [], None
        val_rows, val_y = [rows[i] for i in val_idx], targets[val_idx]
        bar = tqdm(range(self.params["epochs"]), desc=f"{self.type_name} (seed {self.seed})", leave=False)
        for epoch in bar:
            self.module.train()
            total, seen = 0.0, 0
            for batch_ids in loader:
                x, mask = self._batch([rows[i] for i in batch_ids])
                x, mask, mix = self.augment(x, mask, augment_rng)
                yb = torch.from_numpy(targets[batch_ids]).to(device)
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                    out = self.module(x.to(device), None if mask is None else mask.to(device))
                    if mix is None:
                        loss = self.loss(out, yb)
                    else:  # each loss term's gradient is affine in its target (CE, BCE, KL, MSE), so this
                        # trains as the loss of the linearly mixed target would
                        lam, perm = mix
                        loss = lam * self.loss(out, yb) + (1.0 - lam) * self.loss(out, yb[perm.to(device)])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.module.parameters(), self.params["grad_clip"])
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                total += float(loss.detach()) * len(batch_ids)
                seen += len(batch_ids)
            train_loss = total / max(seen, 1)
            val_variants = self._forward_all(val_rows, device)
            # metrics of NaN predictions are NaN at best (sklearn's log_loss raises), so skip them
            finite = np.isfinite(train_loss) and all(np.isfinite(v).all() for v in val_variants.values())
            metrics = self.inner_metrics(val_variants, val_y) if finite else {"score": float("nan")}
            finite = finite and bool(np.isfinite(metrics["score"]))
            record = {"epoch": epoch + 1, "train_loss": train_loss, **metrics}
            self.history.append(record)
            log.info(
                "%s epoch %d: %s",
                self.type_name,
                epoch + 1,
                ", ".join(f"{k}={v:.4f}" for k, v in record.items() if k != "epoch"),
            )
            bar.set_postfix(score=f"{metrics['score']:.4f}")
            if finite and (best_state is None or metrics["score"] < best_score - 1e-9):
                best_score, stale = metrics["score"], 0
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in self.module.state_dict().items()})
                self.best_epoch = epoch + 1
            else:
                stale += 1
                if stale >= self.params["patience"]:
                    log.info(
                        "%s: early stop after epoch %d (best %s)",
                        self.type_name,
                        epoch + 1,
                        self.best_epoch if best_state is not None else "none finite",
                    )
                    break
        if best_state is None:
            last = self.history[-1]
            raise TrainingError(
                f"head {self.type_name} (seed {self.seed}): no epoch of {len(self.history)} gave a finite training "
                f"loss and inner-validation score (last: train_loss={last['train_loss']}, score={last['score']}) "
                f"on {len(fit_idx)} inner-fit rows at batch_size={batch_size}; check the embeddings for NaN/inf, "
                "or lower lr."
            )
        self.module.load_state_dict(best_state)
        self.module.to("cpu").eval()  # pickled on the CPU so a GPU-trained head loads anywhere
        return self

    def predict(self, X: Any) -> dict[str, np.ndarray]:
        device = resolve_device(self.params["device"])
        self.module.to(device)
        try:
            return self._forward_all(self._rows(X), device)
        finally:
            self.module.to("cpu")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "best_epoch": getattr(self, "best_epoch", None), "history": self.history}


def torch_defaults(**overrides: Any) -> dict[str, Any]:
    """Training options every torch head accepts, with per-head overrides of the defaults."""
    return {
        "inputs": "pooled",
        "epochs": 30,
        "batch_size": 32,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "grad_clip": 1.0,
        "patience": 5,
        "inner_val_fraction": 0.15,
        "device": "auto",
        **overrides,
    }


def mlp(dim_in: int, hidden: int, dim_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim_out))


class Pooled(nn.Module):
    """Input adapter of pooled-feature heads: learnable layer weights when inputs are layers."""

    def __init__(self, frame_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.layer_weights = LayerWeights(frame_shape[0]) if len(frame_shape) == 2 else None
        self.dim = frame_shape[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.layer_weights is None else self.layer_weights(x)
