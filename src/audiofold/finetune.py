"""Fine-tune a pretrained encoder per fold (seed 002's primary route) and predict with multi-crop TTA.

One job trains one model (a ``finetune.<name>`` config entry) on one fold's training rows, reading
random crops per batch from the chunk audio stores (audiofold.audio_store), and writes the same
prediction contract as ``audiofold.train`` (``val__main`` for the fold's rows, ``test__main``), so
collect_oof, calibrate and the blends take its candidate unchanged.

The seed's recipe, as options: attention pooling with context gating and dropout before the last
layer; BCE with label smoothing on positives and inverse-sqrt class weights (tags), cross-entropy
(classes), MSE or CCC (ratings, standardised) or label distribution learning (``ldl``, below); AdamW
with separate encoder / head learning rates, a cosine schedule after a linear warm-up, gradient
clipping; mixed precision on CUDA; random crop with loop padding, random gain, SpecAugment masks on
spectrogram inputs, mixup, an optional class-balanced sampler; early stopping on the task's primary
metric, keeping the best epoch.

Every epoch ends with a checkpoint (atomic, outside the job's outputs): a killed job resumes from its
last finished epoch. Each epoch's randomness (order, crops, gains, masks, mixup, dropout) is seeded
from (seed, fold, epoch), so a resumed run ends with the same predictions as an uninterrupted one, and
the same seed gives the same predictions (on CPU).

``rating_loss: ldl`` (label distribution learning, seed 000's LDL target): for each rating target the
head outputs one logit per bin of the rating grid (``rating_grid``); the loss is KL(a Gaussian of width
``ldl_sigma`` around the rating || softmax) plus ``ldl_mse_weight`` x the squared error of the
expectation (standardised by the training targets' spread), and the prediction is the expectation, so
it always lies inside the grid. Valence/arousal (multitarget) get one distribution per target.

With ``pseudo_labels`` enabled the job runs the teacher-student round of ``audiofold.pseudo``: the fold's
model is the teacher; a fresh model (same options and seed, from the pretrained encoder again) is
fine-tuned on the training rows plus the confidently predicted test rows (audio read from the test
stores), weighted by the pseudo-label weights, and written as the variant ``main+pl``. The student has
its own checkpoint, so a job killed in either round resumes where it stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from torch import nn
from tqdm.auto import tqdm

from . import metrics, pseudo
from .audio_store import AudioStores
from .crops import crop_batches
from .errors import ConfigError, DataError, TrainingError
from .finetune_encoders import Encoder, build_encoder, check_encoder_options, encoder_sample_rate
from .heads.mlp import inverse_sqrt_class_weights, smooth_positives
from .heads.prompt import gaussian_label_distribution, scale_values
from .heads.torch_base import mixup
from .io import atomic_path, load_npz, meta_path, read_json, save_npz, stable_hash, write_csv, write_meta
from .tasks import TaskSpec

log = logging.getLogger(__name__)

HEAD_NAME = "finetune"  # the candidate's head; its backbone is ``ft-<model>``
VARIANT = "main"
RATING_LOSSES = ("mse", "ccc", "ldl")


def candidate_backbone(model: str) -> str:
    return f"ft-{model}"


@dataclasses.dataclass(frozen=True)
class FinetuneOptions:
    """One ``finetune.<name>`` config entry (defaults: seed 002's values where it gives them)."""

    encoder: dict
    unfreeze: Any = "all"  # all | none | N (the encoder's last N blocks)
    epochs: int = 20
    patience: int = 3
    batch_size: int = 16
    lr_encoder: float = 1e-4
    lr_head: float = 2e-4
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    grad_clip: float = 5.0
    crop_seconds: float = 5.0
    loop_pad_prob: float = 0.1
    gain_db: float = 6.0
    time_masks: int = 2
    time_mask_frac: float = 0.1
    freq_masks: int = 2
    freq_mask_width: int = 20
    mixup_alpha: float = 0.4
    mixup_prob: float = 0.5
    balanced_sampler: bool = False
    label_smoothing: float = 0.05
    dropout: float = 0.5
    rating_loss: str = "mse"  # mse | ccc (concordance, the usual valence/arousal loss) | ldl
    ldl_sigma: float = 0.5  # seed 000's SIGMA_LDL, in rating units
    ldl_bins: int = 21  # grid bins over a scale without a step (or, with no scale, the targets' range)
    ldl_mse_weight: float = 0.78  # seed 000: W_MSE / W_KLD = 0.35 / 0.45
    tta_crops: int = 5
    validation: str = (
        "inner"  # inner: early stopping on rows carved from the fold's training rows; fold: on its OOF rows
    )
    inner_val_fraction: float = 0.15
    amp: bool = True
    device: str = "auto"
    num_workers: Any = "auto"  # DataLoader workers; auto: the job's threads minus one

    @classmethod
    def from_config(cls, params: dict, where: str = "finetune") -> FinetuneOptions:
        """Options from a config entry; ConfigError naming ``where.key`` for an unknown key or bad value."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - fields)
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown option; allowed: {', '.join(sorted(fields))}.")
        if not isinstance(params.get("encoder"), dict):
            raise ConfigError(f"{where}.encoder: required, a mapping with `type` ({'cnn, aisfx, panns, torchaudio'}).")
        check_encoder_options(params["encoder"], f"{where}.encoder")
        options = cls(**params)
        options.check(where)
        return options

    def check(self, where: str) -> None:
        def bad(key: str, what: str) -> ConfigError:
            return ConfigError(f"{where}.{key}: {what}, got {getattr(self, key)!r}.")

        u = self.unfreeze
        if not (u in ("all", "none") or (isinstance(u, int) and not isinstance(u, bool) and u >= 0)):
            raise bad("unfreeze", "must be all, none or a number of last blocks (>= 0)")
        for key in ("epochs", "patience", "batch_size", "tta_crops", "ldl_bins"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(key, "must be a positive integer")
        for key in ("lr_encoder", "lr_head", "grad_clip", "crop_seconds", "ldl_sigma"):
            if not getattr(self, key) > 0:
                raise bad(key, "must be positive")
        for key in (
            "weight_decay",
            "warmup_epochs",
            "gain_db",
            "mixup_alpha",
            "time_masks",
            "freq_masks",
            "ldl_mse_weight",
        ):
            if not getattr(self, key) >= 0:
                raise bad(key, "must be >= 0")
        for key in ("loop_pad_prob", "mixup_prob", "label_smoothing"):
            if not 0 <= getattr(self, key) <= 1:
                raise bad(key, "must be in [0, 1]")
        for key in ("dropout", "time_mask_frac", "inner_val_fraction"):
            if not 0 <= getattr(self, key) < 1:
                raise bad(key, "must be in [0, 1)")
        if self.rating_loss not in RATING_LOSSES:
            raise bad("rating_loss", f"must be one of {', '.join(RATING_LOSSES)}")
        if self.ldl_bins < 2:
            raise bad("ldl_bins", "must be at least 2")
        if self.validation not in ("inner", "fold"):
            raise bad("validation", "must be inner or fold")
        if self.device not in ("auto", "cpu", "cuda"):
            raise bad("device", "must be auto, cpu or cuda")
        w = self.num_workers
        if not (w == "auto" or (isinstance(w, int) and not isinstance(w, bool) and w >= 0)):
            raise bad("num_workers", "must be auto or an integer >= 0")

    def check_task(self, task: TaskSpec, where: str) -> None:
        """ConfigError for options the task's kind cannot use (a rating loss set for a class task)."""
        if self.rating_loss != "mse" and not task.is_regression:
            raise ConfigError(
                f"{where}.rating_loss: {self.rating_loss} is a loss for rating tasks (regression, multitarget), "
                f"but this task is {task.kind}; remove the key (class kinds use cross-entropy or BCE)."
            )

    @property
    def sample_rate(self) -> int:
        return encoder_sample_rate(self.encoder)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---- model ------------------------------------------------------------------------------------
class FinetuneModel(nn.Module):
    """Encoder frames -> attention pooling -> context gating -> dropout -> linear outputs."""

    def __init__(self, encoder: Encoder, n_out: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        dim = encoder.dim
        self.attention = nn.Linear(dim, 1)
        self.gate = nn.Linear(dim, dim)  # context gating (Miech et al. 2017): x * sigmoid(W x + b)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(dim, n_out)
        self.frozen: list[nn.Module] = []

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.attention, self.gate, self.out) for p in m.parameters()]

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.encoder.frames(feats)  # (B, T, D)
        weights = torch.softmax(self.attention(x).squeeze(-1).float(), dim=1).to(x.dtype)
        pooled = torch.einsum("bt,btd->bd", weights, x)
        gated = pooled * torch.sigmoid(self.gate(pooled))
        return self.out(self.dropout(gated))

    def freeze(self, unfreeze: Any) -> int:
        """Train all, none or the last N blocks of the encoder; the rest keep their weights and batch
        statistics (eval mode). Returns the number of trainable encoder parameters."""
        blocks = self.encoder.blocks()
        n = len(blocks) if unfreeze == "all" else 0 if unfreeze == "none" else min(int(unfreeze), len(blocks))
        trainable = {id(p) for block in blocks[len(blocks) - n :] for p in block.parameters()}
        for p in self.encoder.parameters():
            p.requires_grad_(id(p) in trainable)
        self.frozen = blocks[: len(blocks) - n]
        return sum(p.numel() for p in self.encoder.parameters() if p.requires_grad)

    def train(self, mode: bool = True):
        super().train(mode)
        for block in self.frozen:
            block.eval()
        return self


# ---- data -------------------------------------------------------------------------------------
class CropDataset(torch.utils.data.Dataset):
    """Training crops read from the audio stores per item: a random crop (clips shorter than a crop are
    loop-padded with ``loop_pad_prob``, zero-padded otherwise) at a random gain. Holds row numbers only,
    so its memory does not grow with the clips' audio; each item's randomness comes from (seed, epoch,
    item), so any number of workers gives the same batches."""

    def __init__(self, stores: AudioStores, rows: np.ndarray, crop_len: int, options: FinetuneOptions, seed: int):
        self.stores, self.rows, self.crop_len = stores, np.asarray(rows, dtype=np.int64), crop_len
        self.loop_pad_prob, self.gain_db, self.seed = options.loop_pad_prob, options.gain_db, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: int) -> tuple[np.ndarray, int]:
        rng = np.random.default_rng([self.seed, self.epoch, int(item)])
        row = int(self.rows[item])
        n = int(self.stores.length[row])
        start = int(rng.integers(0, n - self.crop_len + 1)) if n > self.crop_len else 0
        wave = self.stores.read(row, start, self.crop_len)
        loop = rng.random() < self.loop_pad_prob
        if len(wave) < self.crop_len:
            wave = (
                np.resize(wave, self.crop_len) if loop and len(wave) else np.pad(wave, (0, self.crop_len - len(wave)))
            )
        gain = 10.0 ** (rng.uniform(-self.gain_db, self.gain_db) / 20.0)
        return (wave * gain).astype(np.float32), item


def _collate(batch):
    waves, items = zip(*batch)
    return torch.from_numpy(np.stack(waves)), torch.as_tensor(items, dtype=torch.long)


def spec_augment(feats: torch.Tensor, rng: np.random.Generator, options: FinetuneOptions) -> torch.Tensor:
    """SpecAugment on (B, T, F): per clip ``time_masks`` spans of up to ``time_mask_frac`` of the frames and
    ``freq_masks`` bands of up to ``freq_mask_width`` bins set to the clip's mean (never the whole clip)."""
    feats = feats.clone()
    _, n_t, n_f = feats.shape
    for row in range(len(feats)):
        fill = feats[row].mean()
        for _ in range(options.time_masks):
            width = int(rng.integers(0, int(options.time_mask_frac * n_t) + 1))
            start = int(rng.integers(0, n_t - width + 1))
            if width < n_t:
                feats[row, start : start + width, :] = fill
        for _ in range(options.freq_masks):
            width = int(rng.integers(0, min(options.freq_mask_width, n_f - 1) + 1))
            start = int(rng.integers(0, n_f - width + 1))
            feats[row, :, start : start + width] = fill
    return feats


def epoch_order(n: int, weights: np.ndarray | None, seed: int, fold_code: int, epoch: int) -> list[int]:
    """This epoch's item order: a seeded shuffle, or a class-balanced draw with replacement."""
    rng = np.random.default_rng([seed, fold_code, epoch, 7])
    if weights is None:
        return rng.permutation(n).tolist()
    return rng.choice(n, size=n, replace=True, p=weights / weights.sum()).tolist()


def balanced_weights(y: np.ndarray, task: TaskSpec, cap: float = 5.0) -> np.ndarray:
    """Per-row sampling weights by inverse class frequency (multilabel: its rarest positive class),
    mean 1, capped at ``cap`` (seed 002: at most 5x oversampling)."""
    if task.kind == "classification":
        counts = np.bincount(y.astype(np.int64), minlength=task.n_outputs).astype(float)
        w = 1.0 / np.maximum(counts[y.astype(np.int64)], 1.0)
    else:
        counts = np.maximum(y.sum(axis=0), 1.0)
        w = np.where(y > 0.5, 1.0 / counts, 0.0).max(axis=1)
        w = np.where(w > 0, w, 1.0 / len(y))
    w = w / w.mean()
    return np.minimum(w, cap)


# ---- losses and outputs ---------------------------------------------------------------------
def rating_grid(task: TaskSpec, y_fit: np.ndarray, bins: int) -> np.ndarray:
    """(targets, bins) grid values for ``rating_loss: ldl``: the task's scale from min to max by its step,
    ``bins`` even values over a scale without a step, or (no declared scale) over each target's range in
    the training rows."""
    scale = task.scale or {}
    n_targets = task.n_outputs
    if scale.get("min") is not None and scale.get("max") is not None:
        return np.tile(scale_values(scale, n_default=bins), (n_targets, 1))
    y = np.asarray(y_fit, dtype=np.float64).reshape(len(y_fit), -1)
    return np.stack([np.linspace(lo, hi, bins) for lo, hi in zip(y.min(axis=0), y.max(axis=0))])


class Objective:
    """The task kind's loss on model outputs and its outputs -> predictions (probabilities or ratings)."""

    def __init__(self, task: TaskSpec, options: FinetuneOptions, y_fit: np.ndarray) -> None:
        self.task, self.options = task, options
        self.ldl = task.is_regression and options.rating_loss == "ldl"
        if task.kind == "multilabel":
            self.class_weights = torch.from_numpy(inverse_sqrt_class_weights(y_fit > 0.5))
        if task.is_regression:
            y_fit = y_fit.reshape(len(y_fit), -1).astype(np.float64)
            self.mean = y_fit.mean(axis=0)
            self.std = np.where(y_fit.std(axis=0) > 0, y_fit.std(axis=0), 1.0)
        if self.ldl:
            self.values = rating_grid(task, y_fit, options.ldl_bins)
            self.prior = self._label_distribution(y_fit)

    def _label_distribution(self, y_fit: np.ndarray) -> np.ndarray:
        """(targets, bins): the mean Gaussian label distribution of the training rows."""
        values = torch.as_tensor(self.values, dtype=torch.float64)
        y = torch.as_tensor(np.asarray(y_fit, dtype=np.float64).reshape(len(y_fit), -1))
        return np.stack(
            [
                gaussian_label_distribution(y[:, t], values[t], self.options.ldl_sigma).mean(dim=0).numpy()
                for t in range(len(values))
            ]
        )

    def init_output(self, layer: nn.Linear) -> None:
        """ldl: start the output bias at the log of the training rows' mean label distribution, so the first
        prediction is near the training mean (as the standardised losses start), not the grid's centre."""
        if self.ldl:
            with torch.no_grad():
                layer.bias.copy_(torch.from_numpy(np.log(np.maximum(self.prior, 1e-6)).reshape(-1)))

    @property
    def n_out(self) -> int:
        """Model outputs: one per class / target, or one logit per grid bin and target under ldl."""
        return self.values.size if self.ldl else self.task.n_outputs

    def targets(self, y: np.ndarray) -> torch.Tensor:
        if self.task.kind == "classification":
            return torch.from_numpy(np.asarray(y, dtype=np.int64))
        if self.ldl:  # the grid is in rating units
            return torch.from_numpy(np.asarray(y, dtype=np.float32).reshape(len(y), -1))
        if self.task.is_regression:
            return torch.from_numpy(((y.reshape(len(y), -1) - self.mean) / self.std).astype(np.float32))
        return torch.from_numpy((np.asarray(y) > 0.5).astype(np.float32))

    def loss(self, out: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """The batch loss: the mean of per-row losses, weighted by ``weight`` (pseudo-labelled rows) when
        given. CCC is a batch statistic, so it ignores the weights."""
        out = out.float()
        if self.task.kind == "classification":
            per_row = nn.functional.cross_entropy(out, y, reduction="none")
        elif self.task.kind == "multilabel":
            target = smooth_positives(y, self.options.label_smoothing)
            per_entry = nn.functional.binary_cross_entropy_with_logits(out, target, reduction="none")
            per_row = (per_entry * self.class_weights.to(out.device)).mean(dim=1)
        elif self.ldl:
            per_row = self.ldl_loss(out, y)
        elif self.options.rating_loss == "ccc":
            return (1.0 - concordance(out, y)).mean()
        else:
            per_row = ((out - y) ** 2).mean(dim=1)
        if weight is None:
            return per_row.mean()
        return (per_row * weight).sum() / weight.sum()

    def ldl_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per row: mean over targets of KL(Gaussian label distribution || softmax over the grid) plus
        ``ldl_mse_weight`` x the standardised squared error of the expectation."""
        values = torch.as_tensor(self.values, dtype=torch.float32, device=out.device)
        log_probs = torch.log_softmax(out.reshape(len(out), *values.shape), dim=2)
        kl = torch.stack(
            [
                nn.functional.kl_div(
                    log_probs[:, t],
                    gaussian_label_distribution(y[:, t], values[t], self.options.ldl_sigma),
                    reduction="none",
                ).sum(dim=1)
                for t in range(len(values))
            ],
            dim=1,
        )
        expectation = (log_probs.exp() * values).sum(dim=2)
        std = torch.as_tensor(self.std, dtype=torch.float32, device=out.device)
        squared = ((expectation - y) / std) ** 2
        return (kl + self.options.ldl_mse_weight * squared).mean(dim=1)

    def predictions(self, logits: np.ndarray) -> np.ndarray:
        logits = logits.astype(np.float64)
        if self.task.kind == "classification":
            z = np.exp(logits - logits.max(axis=1, keepdims=True))
            return z / z.sum(axis=1, keepdims=True)
        if self.task.kind == "multilabel":
            return 1.0 / (1.0 + np.exp(-logits))
        if self.ldl:  # the expectation over each target's grid
            z = logits.reshape(len(logits), *self.values.shape)
            z = np.exp(z - z.max(axis=2, keepdims=True))
            return ((z / z.sum(axis=2, keepdims=True)) * self.values).sum(axis=2)
        return logits * self.std + self.mean

    def state(self) -> dict:
        return {k: getattr(self, k) for k in ("mean", "std", "values") if hasattr(self, k)}


def concordance(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Lin's concordance correlation per column of (B, k)."""
    pm, ym = pred.mean(dim=0), y.mean(dim=0)
    cov = ((pred - pm) * (y - ym)).mean(dim=0)
    return 2 * cov / (pred.var(dim=0, unbiased=False) + y.var(dim=0, unbiased=False) + (pm - ym) ** 2 + 1e-8)


# ---- training ---------------------------------------------------------------------------------
def resolve_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("finetune device: cuda was asked for, but torch sees no GPU; use auto or cpu.")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def warmup_cosine(optimizer, warmup_steps: int, total_steps: int):
    """Linear warm-up to each group's lr, then cosine decay to zero at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def inner_split(y: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int, task: TaskSpec):
    """(fit, early-stopping) positions within the training rows; whole groups go to one side."""
    index = np.arange(len(y))
    if groups is not None and len(np.unique(groups)) >= 2:
        fit, val = next(GroupShuffleSplit(1, test_size=fraction, random_state=seed).split(index, groups=groups))
        return np.sort(fit), np.sort(val)
    stratify = y if task.kind == "classification" else None
    try:
        fit, val = train_test_split(index, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError:  # a class too rare to stratify on
        fit, val = train_test_split(index, test_size=fraction, random_state=seed)
    return np.sort(fit), np.sort(val)


class Interrupted(Exception):
    """Raised after ``stop_after`` epochs (tests: a job killed after an epoch's checkpoint)."""


class Trainer:
    """One model on one set of fit rows, with per-epoch checkpoints and early stopping."""

    def __init__(
        self,
        options: FinetuneOptions,
        task: TaskSpec,
        stores: AudioStores,
        where: str,
        seed: int,
        fold_code: int,
        device: torch.device,
        num_workers: int,
    ) -> None:
        self.options, self.task, self.stores, self.where = options, task, stores, where
        self.seed, self.fold_code, self.device, self.num_workers = seed, fold_code, device, num_workers
        # the stores are read at the encoder's rate (finetune_fold opens them so); None: no audio (doctor's timing)
        self.crop_len = max(1, round(options.crop_seconds * options.sample_rate))
        self.amp_dtype = None
        if device.type == "cuda" and options.amp:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def build(self, n_out: int) -> FinetuneModel:
        torch.manual_seed(self.seed)  # the head's initial weights (and a from-scratch encoder's)
        model = FinetuneModel(
            build_encoder(self.options.encoder, f"{self.where}: encoder"), n_out, self.options.dropout
        )
        self.trainable_encoder = model.freeze(self.options.unfreeze)
        return model.to(self.device)

    # -- prediction -------------------------------------------------------------------------
    def logits(self, model: FinetuneModel, rows: np.ndarray) -> np.ndarray:
        """Mean logits over ``tta_crops`` crops per clip (embed's crop positions; a clip shorter than a crop
        is zero-padded and its identical crops run once). Reads one batch of clips at a time."""
        model.eval()
        k, batch = self.options.tta_crops, self.options.batch_size
        out = np.zeros((len(rows), model.out.out_features), dtype=np.float64)
        clips = (self.stores.read(int(row)) for row in rows)
        for crops, group in crop_batches(clips, self.crop_len, k, "zeros", 0, batch):
            z = self.crop_logits(model, crops)
            at = 0
            for i, distinct, index in group:
                out[i] = z[at + index].mean(axis=0)
                at += len(distinct)
        return out

    def crop_logits(self, model: FinetuneModel, crops: np.ndarray) -> np.ndarray:
        """Logits of a batch of (n, crop_len) crops, in inference mode."""
        with torch.no_grad(), self._autocast():
            return model(model.encoder.features(torch.from_numpy(crops).to(self.device))).float().cpu().numpy()

    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast("cpu", enabled=False)
        return torch.autocast("cuda", dtype=self.amp_dtype)

    # -- training ---------------------------------------------------------------------------
    def fit(
        self,
        fit_rows: np.ndarray,
        y_fit: np.ndarray,
        val_rows: np.ndarray | None,
        y_val: np.ndarray | None,
        checkpoint: Path | None,
        run_key: str,
        epochs: int | None = None,
        stop_after: int | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> tuple[FinetuneModel, Objective, list[dict], int]:
        """Train; returns (model at its best epoch, objective, per-epoch history, best epoch).

        Without validation rows every epoch runs and the last one is kept (the refit). ``sample_weight``
        (one per fit row) weights each row's loss."""
        o = self.options
        epochs = epochs or o.epochs
        objective = Objective(self.task, o, y_fit)
        model = self.build(objective.n_out)
        objective.init_output(model.out)
        targets = objective.targets(y_fit)
        row_weight = None if sample_weight is None else torch.as_tensor(sample_weight, dtype=torch.float32)
        optimizer, scheduler, scaler = self.optimization(model, len(fit_rows), epochs)
        weights = balanced_weights(np.asarray(y_fit), self.task) if o.balanced_sampler else None
        dataset = CropDataset(self.stores, fit_rows, self.crop_len, o, self.seed * 1000 + self.fold_code)
        name, greater = metrics.primary(self.task.kind)

        state = {"epoch": 0, "history": [], "best": None, "best_epoch": 0, "best_score": None, "stale": 0}
        if checkpoint is not None and checkpoint.is_file():
            saved = torch.load(checkpoint, map_location="cpu", weights_only=False)  # our own file
            if saved.get("key") == run_key:
                model.load_state_dict(saved["model"])
                optimizer.load_state_dict(saved["optimizer"])
                scheduler.load_state_dict(saved["scheduler"])
                scaler.load_state_dict(saved["scaler"])
                state = saved["state"]
                log.info("%s: resuming after epoch %d from %s", self.where, state["epoch"], checkpoint)
            else:
                log.info("%s: %s is from other settings or data; starting afresh", self.where, checkpoint)

        bar = tqdm(range(state["epoch"], epochs), desc=self.where, unit="epoch", initial=state["epoch"], total=epochs)
        for epoch in bar:
            if state["stale"] >= o.patience:
                break
            started = time.perf_counter()
            train_loss = self._epoch(
                model, dataset, targets, row_weight, weights, objective, optimizer, scheduler, scaler, epoch
            )
            record = {"epoch": epoch + 1, "train_loss": train_loss, "lr_head": optimizer.param_groups[0]["lr"]}
            if val_rows is not None and len(val_rows):
                P = objective.predictions(self.logits(model, val_rows))
                score = float(metrics.score(y_val, P, self.task)[name]) if np.isfinite(P).all() else float("nan")
                record[f"val_{name}"] = score
                better = state["best_score"] is None or (
                    score > state["best_score"] if greater else score < state["best_score"]
                )
                if np.isfinite(score) and better:
                    state.update(best_score=score, best_epoch=epoch + 1, stale=0, best=_cpu_state(model))
                else:
                    state["stale"] += 1
            else:
                state.update(best_epoch=epoch + 1, best=None)  # the last epoch is the model
            record["seconds"] = round(time.perf_counter() - started, 3)
            state["history"].append(record)
            state["epoch"] = epoch + 1
            bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k in ("train_loss", f"val_{name}")})
            log.info("%s epoch %d: %s", self.where, epoch + 1, ", ".join(f"{k}={v:.5g}" for k, v in record.items()))
            if checkpoint is not None:
                with atomic_path(checkpoint) as tmp:
                    torch.save(
                        {
                            "key": run_key,
                            "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "scaler": scaler.state_dict(),
                            "state": state,
                        },
                        tmp,
                    )
            if stop_after is not None and epoch + 1 >= stop_after and epoch + 1 < epochs:
                raise Interrupted(f"{self.where}: stopped after epoch {epoch + 1}")
        bar.close()
        if val_rows is not None and len(val_rows):
            if state["best"] is None:
                raise TrainingError(
                    f"{self.where}: no epoch gave a finite validation {name}; check the audio, or lower lr_head/lr_encoder."
                )
            model.load_state_dict(state["best"])
        return model, objective, state["history"], state["best_epoch"]

    def optimization(self, model: FinetuneModel, n_fit: int, epochs: int):
        """(AdamW with the head's and the encoder's learning rates, warm-up + cosine schedule, AMP grad scaler)."""
        o = self.options
        encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
        groups = [{"params": model.head_parameters(), "lr": o.lr_head}]
        if encoder_params:
            groups.append({"params": encoder_params, "lr": o.lr_encoder})
        optimizer = torch.optim.AdamW(groups, weight_decay=o.weight_decay)
        steps = max(1, math.ceil(n_fit / o.batch_size))
        scheduler = warmup_cosine(optimizer, max(1, round(o.warmup_epochs * steps)), epochs * steps)
        scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        return optimizer, scheduler, scaler

    def _epoch(
        self, model, dataset, targets, row_weight, weights, objective, optimizer, scheduler, scaler, epoch
    ) -> float:
        o = self.options
        torch.manual_seed(self.seed * 1_000_003 + self.fold_code * 1009 + epoch)  # dropout
        rng = np.random.default_rng([self.seed, self.fold_code, epoch, 3])  # masks and mixup
        dataset.epoch = epoch
        order = epoch_order(len(dataset), weights, self.seed, self.fold_code, epoch)
        batches = [order[s : s + o.batch_size] for s in range(0, len(order), o.batch_size)]
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=batches,
            num_workers=self.num_workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
        )
        model.train()
        total, seen = 0.0, 0
        for waves, items in loader:
            wb = None if row_weight is None else row_weight[items]
            loss = self.step(model, waves, targets[items], objective, optimizer, scheduler, scaler, rng, epoch, wb)
            total += loss * len(items)
            seen += len(items)
        return total / max(seen, 1)

    def step(self, model, waves, yb, objective, optimizer, scheduler, scaler, rng, epoch: int, wb=None) -> float:
        """One training step on a batch of crops (features, SpecAugment, mixup, loss weighted by the rows'
        ``wb`` when given, backward, clipped optimizer and schedule step); returns the batch's loss."""
        o = self.options
        with torch.no_grad():
            feats = model.encoder.features(waves.to(self.device, non_blocking=True))
            if model.encoder.spectrogram and (o.time_masks or o.freq_masks):
                feats = spec_augment(feats, rng, o)
        yb = yb.to(self.device)
        wb = None if wb is None else wb.to(self.device)
        mix = None
        # draw every batch, mixed or not, so the random stream does not depend on the outcomes
        if o.mixup_alpha > 0 and rng.random() < o.mixup_prob and len(feats) > 1:
            feats, _, lam, perm = mixup(feats, None, rng, o.mixup_alpha)
            mix = (lam, perm.to(self.device))
        with self._autocast():
            out = model(feats)
            loss = objective.loss(out, yb, wb)
            if mix is not None:  # each loss is affine in its target (ldl: its target distribution): the mixed target's
                mixed_weight = None if wb is None else wb[mix[1]]
                loss = mix[0] * loss + (1.0 - mix[0]) * objective.loss(out, yb[mix[1]], mixed_weight)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"{self.where}, epoch {epoch + 1}: non-finite training loss ({float(loss.detach())}); lower lr_head / "
                "lr_encoder, check the audio for NaN/inf, or set amp: false."
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], o.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        return float(loss.detach())


def _cpu_state(model: nn.Module) -> dict:
    return copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})


# ---- the step -----------------------------------------------------------------------------------
def finetune_fold(
    *,
    model_name: str,
    options: FinetuneOptions,
    train_stores: list[str | os.PathLike],
    test_stores: list[str | os.PathLike],
    targets_path: str | os.PathLike,
    task: TaskSpec,
    fold: int | None,
    seed: int,
    preds_out: str | os.PathLike,
    model_out: str | os.PathLike,
    history_out: str | os.PathLike,
    checkpoint_dir: str | os.PathLike | None = None,
    epochs: int | None = None,
    threads: int = 1,
    pseudo_labels: dict | None = None,
    stop_after: int | None = None,
    stop_student_after: int | None = None,
    meta: dict | None = None,
) -> dict:
    """Fine-tune ``model_name`` on the training rows outside ``fold`` (every row with ``fold=None``: the
    refit, for ``epochs`` epochs and test predictions only) and write the train step's prediction
    contract to ``preds_out``, the best weights to ``model_out`` and the per-epoch log to ``history_out``.
    With ``pseudo_labels`` (config block, ``enabled``) a student round adds the variant ``main+pl``.
    ``stop_after`` / ``stop_student_after`` stop the teacher / student after that many epochs (tests)."""
    where = f"finetune model {model_name!r}, " + (f"fold {fold}" if fold is not None else "refit")
    options.check_task(task, f"finetune.{model_name}")
    settings = pseudo.settings(pseudo_labels)
    device = resolve_device(options.device)
    torch.use_deterministic_algorithms(True, warn_only=True)
    num_workers = max(0, threads - 1) if options.num_workers == "auto" else int(options.num_workers)
    targets = load_npz(targets_path)
    all_ids = [str(i) for i in targets["ids"]]
    y, folds, groups = targets["y"], targets["fold"], targets.get("group")
    train = AudioStores(list(train_stores), options.sample_rate)
    test = AudioStores(list(test_stores), options.sample_rate)
    rows = train.rows(all_ids, "training clips")
    is_val = folds == fold if fold is not None else np.zeros(len(all_ids), dtype=bool)
    if fold is not None and not is_val.any():
        raise DataError(f"{where}: fold {fold} has no rows; check cv.n_folds / data.fold_column.")
    fit_pos, stop_pos = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if fold is not None and options.validation == "inner":
        inner_fit, inner_val = inner_split(
            y[fit_pos], None if groups is None else groups[fit_pos], options.inner_val_fraction, seed, task
        )
        fit_pos, stop_pos = fit_pos[inner_fit], fit_pos[inner_val]

    fold_code = -1 if fold is None else int(fold)
    trainer = Trainer(options, task, train, where, seed, fold_code + 1, device, num_workers)
    run_key = stable_hash(
        {
            "options": options.to_dict(),
            "seed": seed,
            "fold": fold,
            "epochs": epochs,
            "fit": [all_ids[i] for i in fit_pos],
            "stop": [all_ids[i] for i in stop_pos],
            "y": stable_hash(np.asarray(y).tolist()),
        },
        length=16,
    )
    checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
    checkpoint = None if checkpoint_dir is None else checkpoint_dir / "last.pt"
    stop_rows, stop_y = (rows[stop_pos], y[stop_pos]) if fold is not None else (None, None)
    started = time.perf_counter()
    model, objective, history, best_epoch = trainer.fit(
        rows[fit_pos], y[fit_pos], stop_rows, stop_y, checkpoint, run_key, epochs=epochs, stop_after=stop_after
    )
    fit_seconds = time.perf_counter() - started

    val_pred = {VARIANT: objective.predictions(trainer.logits(model, rows[is_val]))} if is_val.any() else {}
    test_pred = {VARIANT: objective.predictions(trainer.logits(model, np.arange(len(test))))}
    saved = {"state": model.state_dict(), "options": options.to_dict(), "objective": objective.state()}
    student_info = None
    if settings is not None:
        student = StudentRound(options, task, settings, where, seed, fold_code + 1, device, num_workers)
        val_pl, test_pl, student_state, student_info = student.run(
            list(train_stores) + list(test_stores),
            len(train),
            rows,
            y,
            fit_pos,
            is_val,
            (stop_rows, stop_y),
            val_pred.get(VARIANT),
            test_pred[VARIANT],
            None if checkpoint_dir is None else checkpoint_dir / "student.pt",
            run_key,
            epochs,
            stop_student_after,
        )
        val_pred.update(val_pl)
        test_pred.update(test_pl)
        if student_state is not None:
            saved["student"] = student_state
    for split, preds in (("validation", val_pred), ("test", test_pred)):
        for variant, P in preds.items():
            if not np.isfinite(P).all():
                raise TrainingError(
                    f"{where}: non-finite {split} predictions ({variant}); see the per-epoch log {history_out}."
                )

    with atomic_path(model_out) as tmp:
        torch.save(saved, tmp)
    arrays = {"val_ids": np.asarray(all_ids, dtype=str)[is_val], "test_ids": np.asarray(test.ids, dtype=str)}
    for variant, P in test_pred.items():
        if variant in val_pred:
            arrays[f"val__{variant}"] = val_pred[variant].astype(np.float32)
        arrays[f"test__{variant}"] = P.astype(np.float32)
    save_npz(preds_out, **arrays)
    write_csv(history_out, pd.DataFrame(history), index=False)
    info = {
        "fold": fold,
        "model": model_name,
        "n_train": int((~is_val).sum()),
        "n_fit": len(fit_pos),
        "n_early_stopping": len(stop_pos) if fold is not None else 0,
        "early_stopping_rows": options.validation if fold is not None else None,
        "n_val": int(is_val.sum()),
        "n_test": len(test),
        "variants": sorted(test_pred),
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "fit_seconds": round(fit_seconds, 3),
        "device": device.type,
        "amp": None if trainer.amp_dtype is None else str(trainer.amp_dtype),
        "trainable_encoder_parameters": trainer.trainable_encoder,
        "options": options.to_dict(),
        "history": history,
        **(meta or {}),
    }
    if student_info is not None:
        info["pseudo_labels"] = student_info
    write_meta(preds_out, **info)
    if checkpoint_dir is not None:  # finished: the outputs replace them
        for name in ("last.pt", "student.pt"):
            (checkpoint_dir / name).unlink(missing_ok=True)
    log.info("%s: best epoch %d of %d, %.1fs", where, best_epoch, len(history), fit_seconds)
    return info


class StudentRound:
    """The teacher-student round of ``audiofold.pseudo`` for one fine-tuning job: pseudo-labels from the
    teacher's test predictions, a fresh model fine-tuned on the fit rows plus those test rows (read from
    the test stores, after the training stores), early-stopped on the teacher's rows, its predictions
    renamed ``{variant}+pl``. No validation row and no test label enters its training."""

    def __init__(self, options, task, settings, where, seed, fold_code, device, num_workers) -> None:
        self.options, self.task, self.settings = options, task, settings
        self.where = f"{where}, pseudo-label student"
        self.seed, self.fold_code, self.device, self.num_workers = seed, fold_code, device, num_workers

    def run(
        self,
        store_paths: list,
        n_train: int,
        rows: np.ndarray,
        y: np.ndarray,
        fit_pos: np.ndarray,
        is_val: np.ndarray,
        stopping: tuple,
        teacher_val: np.ndarray | None,
        teacher_test: np.ndarray,
        checkpoint: Path | None,
        teacher_key: str,
        epochs: int | None,
        stop_after: int | None,
    ) -> tuple[dict, dict, dict | None, dict]:
        """(validation and test predictions ``main+pl``, the student's weights or None, its summary)."""
        selection = pseudo.select(
            teacher_test,
            self.task,
            self.settings["min_confidence"],
            y[fit_pos],
            weighted=self.settings["weight"] == "confidence",
        )
        both = AudioStores(store_paths, self.options.sample_rate)  # training rows first, then the test rows
        test_rows = n_train + np.arange(len(both) - n_train)
        name = pseudo.variant_name(VARIANT)
        info = {**selection.summary(len(test_rows)), **self.settings}
        if not len(selection.rows):  # the student would be the teacher fitted again on the same rows
            log.info("%s: no confident test row; the teacher stands in", self.where)
            val = {} if teacher_val is None else {name: teacher_val}
            return val, {name: teacher_test}, None, {**info, "student": "teacher (no pseudo-labelled row)"}
        fit_rows = np.concatenate([rows[fit_pos], test_rows[selection.rows]])
        y_fit = np.concatenate([np.asarray(y[fit_pos]), selection.y])
        weight = np.concatenate([np.ones(len(fit_pos)), selection.weight])
        key = stable_hash(
            {
                "teacher": teacher_key,
                "rows": selection.rows.tolist(),
                "y": stable_hash(np.asarray(selection.y).tolist()),
                "weight": np.round(selection.weight, 6).tolist(),
            },
            length=16,
        )
        trainer = Trainer(
            self.options, self.task, both, self.where, self.seed, self.fold_code, self.device, self.num_workers
        )
        started = time.perf_counter()
        model, objective, history, best_epoch = trainer.fit(
            fit_rows, y_fit, *stopping, checkpoint, key, epochs=epochs, stop_after=stop_after, sample_weight=weight
        )
        val = {name: objective.predictions(trainer.logits(model, rows[is_val]))} if is_val.any() else {}
        test = {name: objective.predictions(trainer.logits(model, test_rows))}
        info.update(
            best_epoch=best_epoch,
            epochs_run=len(history),
            fit_seconds=round(time.perf_counter() - started, 3),
            history=history,
        )
        return val, test, {"state": model.state_dict(), "objective": objective.state()}, info


def time_training_step(options: FinetuneOptions, task: TaskSpec, y: np.ndarray, seed: int = 0, steps: int = 2) -> dict:
    """What ``audiofold doctor`` scales to a run: seconds to build the model as a job does, per training
    step on a batch of ``len(y)`` noise crops of ``crop_seconds`` (``steps`` timed after a warm-up step),
    and per crop at inference; on the configured device, or the CPU where that is cuda and torch sees no
    GPU (``device`` says which)."""
    try:
        device = resolve_device(options.device)
    except ConfigError:
        device = torch.device("cpu")
    # as finetune_fold runs: deterministic algorithms are several times slower on some CPU convolutions
    torch.use_deterministic_algorithms(True, warn_only=True)
    trainer = Trainer(options, task, None, "finetune timing", seed, 0, device, num_workers=0)
    rng = np.random.default_rng(seed)
    objective = Objective(task, options, y)
    targets = objective.targets(y)

    def now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    started = now()
    model = trainer.build(objective.n_out)
    objective.init_output(model.out)
    build = now() - started
    optimizer, scheduler, scaler = trainer.optimization(model, len(y) * (steps + 1), 1)
    waves = torch.from_numpy(rng.normal(0, 0.1, (len(y), trainer.crop_len)).astype(np.float32))
    model.train()
    for i in range(steps + 1):
        if i == 1:  # after the warm-up: lazy inits, the allocator, the first AdamW state
            started = now()
        trainer.step(model, waves, targets, objective, optimizer, scheduler, scaler, rng, 0)
    per_step = (now() - started) / steps
    crops = waves.numpy()
    model.eval()
    trainer.crop_logits(model, crops)  # warm-up
    started = now()
    trainer.crop_logits(model, crops)
    return {"build": build, "step": per_step, "crop": (now() - started) / len(crops), "device": device.type}


def refit_epochs(fold_preds: list[str | os.PathLike]) -> int:
    """Epochs for the refit on every row: the median best epoch of the fold models (at least 1)."""
    best = [int(read_json(meta_path(p))["best_epoch"]) for p in fold_preds]
    return max(1, int(round(float(np.median(best)))))
