"""ESC-10 accuracy of frozen embeddings: hand-crafted vs aisfx vs distillmos (and aisfx + distillmos),
and what int8 dynamic quantization (``precision: int8``) of the pretrained ones costs in accuracy.

Real audio from ../shared/datasets/esc10 (400 clips, 10 classes), the 5 official folds, a
standardised logistic-regression head; writes benchmarks/results/esc10_embeddings.{json,md}.

    .venv/bin/python benchmarks/esc10_embeddings.py [--data ../shared/datasets/esc10] [--limit N_PER_CLASS_AND_FOLD]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from audiofold.audio import load_mono
from audiofold.backbones import build_backbone
from audiofold.embed import extract

ROOT = Path(__file__).resolve().parents[1]
BACKBONES = {
    "logmel": {"type": "logmel"},
    "mfcc": {"type": "mfcc"},
    "aisfx": {"type": "aisfx"},
    "distillmos": {"type": "distillmos"},
    "aisfx_int8": {"type": "aisfx", "precision": "int8"},
    "distillmos_int8": {"type": "distillmos", "precision": "int8"},
}


def fold_accuracy(X: np.ndarray, y: np.ndarray, folds: np.ndarray) -> list[float]:
    scores = []
    for k in np.unique(folds):
        train, val = folds != k, folds == k
        head = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
        head.fit(X[train], y[train])
        scores.append(float((head.predict(X[val]) == y[val]).mean()))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/datasets/esc10"))
    parser.add_argument("--limit", type=int, default=None, help="N clips per class and fold only (smoke runs)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/esc10_embeddings"))
    args = parser.parse_args()
    data = Path(args.data)
    table = pd.read_csv(data / "esc10.csv")
    if args.limit:
        table = table.groupby(["fold", "target"]).head(args.limit)
    y, folds = table["target"].to_numpy(), table["fold"].to_numpy()
    waves_by_sr: dict[int, list[np.ndarray]] = {}
    embeddings, results = {}, {}
    for name, params in BACKBONES.items():
        backbone = build_backbone(name, params)
        sr = backbone.sample_rate
        if sr not in waves_by_sr:
            waves_by_sr[sr] = [load_mono(data / f, sr) for f in table["filename"]]
        started = time.perf_counter()
        X = extract(waves_by_sr[sr], backbone, batch_size=16)["X"]
        seconds = time.perf_counter() - started
        embeddings[name] = X
        scores = fold_accuracy(X, y, folds)
        results[name] = {
            "accuracy": float(np.mean(scores)),
            "fold_accuracy": scores,
            "dim": int(X.shape[1]),
            "extract_seconds": round(seconds, 1),
        }
        if name.endswith("_int8"):  # fidelity to the fp32 embeddings of the same model
            ref = embeddings[name.removesuffix("_int8")]
            cosine = (X * ref).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(ref, axis=1)
            results[name]["cosine_to_fp32_min"] = round(float(cosine.min()), 4)
            results[name]["cosine_to_fp32_mean"] = round(float(cosine.mean()), 4)
        print(f"{name:22s} acc {np.mean(scores):.3f}  folds {np.round(scores, 3).tolist()}  ({seconds:.0f} s)")
    both = np.concatenate([embeddings["aisfx"], embeddings["distillmos"]], axis=1)
    scores = fold_accuracy(both, y, folds)
    results["aisfx+distillmos"] = {
        "accuracy": float(np.mean(scores)),
        "fold_accuracy": scores,
        "dim": int(both.shape[1]),
    }
    print(f"{'aisfx+distillmos':22s} acc {np.mean(scores):.3f}")
    report = {
        "clips": len(table),
        "protocol": "ESC-10, 5 official folds, StandardScaler + LogisticRegression(C=0.1)",
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "| embedding | dim | accuracy (5 official folds) | extraction s (400 clips, 2 cores) | cosine to fp32 (min / mean) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {k} | {v['dim']} | {100 * v['accuracy']:.1f} % | {v.get('extract_seconds', '')} | "
        + (f"{v['cosine_to_fp32_min']} / {v['cosine_to_fp32_mean']}" if "cosine_to_fp32_min" in v else "")
        + " |"
        for k, v in results.items()
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
