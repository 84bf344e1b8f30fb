"""Learning curves of the fine-tuned models: training loss and validation score per epoch, one panel per model."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .report import _figure, _save


def finetune_curves(histories: dict[str, list[str | os.PathLike]], out_png: str | os.PathLike) -> dict:
    """``histories``: model -> its folds' per-epoch CSVs (``finetune_fold``'s history_out). One column of
    panels per model: training loss (top) and the early-stopping score (bottom), a line per fold."""
    plt = _figure()
    models = sorted(histories)
    fig, axes = plt.subplots(2, max(1, len(models)), figsize=(4.5 * max(1, len(models)), 6), squeeze=False)
    summary = {}
    for col, model in enumerate(models):
        loss_ax, score_ax = axes[0][col], axes[1][col]
        for path in histories[model]:
            frame = pd.read_csv(path)
            label = Path(path).stem
            loss_ax.plot(frame["epoch"], frame["train_loss"], marker=".", label=label)
            score_cols = [c for c in frame.columns if c.startswith("val_")]
            if score_cols:
                score_ax.plot(frame["epoch"], frame[score_cols[0]], marker=".", label=label)
                score_ax.set_ylabel(score_cols[0])
            summary.setdefault(model, {})[label] = int(len(frame))
        loss_ax.set_title(f"ft-{model}")
        loss_ax.set_ylabel("training loss")
        score_ax.set_xlabel("epoch")
        loss_ax.legend(fontsize=7)
    _save(fig, str(out_png))
    return summary
