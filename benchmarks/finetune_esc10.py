"""Fine-tuned aisfx on ESC-10, some of the 5 official folds, through the library the ``finetune`` rule calls.

``benchmarks/quality.py --finetune-config`` runs the whole workflow with fine-tuned candidates (every
fold, the refit, the blends); on a 2-core CPU that takes hours. This measures what the CPU allows: the
400 clips decoded once into an audio store at 44.1 kHz (``audio_store``), then ``finetune_fold`` per
asked-for fold, and the fold's accuracy next to the frozen-embedding reference (aisfx + best head,
0.903-0.912 over the 5 folds, benchmarks/results/quality.md).

    .venv/bin/python benchmarks/finetune_esc10.py [--folds 0] [--epochs 6] [--data-dir ../shared/datasets]
        [--device auto|cpu|cuda] [--no-amp]   # on a GPU: run twice, --amp and --no-amp, for the AMP check
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATASETS_DIR = ROOT.parent / "shared" / "datasets"


def main() -> None:
    from audiofold.audio_store import audio_store
    from audiofold.finetune import FinetuneOptions, finetune_fold
    from audiofold.io import save_npz
    from audiofold.metrics import score
    from audiofold.tasks import TaskSpec

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--unfreeze", default="all")
    parser.add_argument("--lr-head", type=float, default=2e-4)
    parser.add_argument("--lr-encoder", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True, help="mixed precision on CUDA")
    parser.add_argument("--data-dir", type=Path, default=DATASETS_DIR)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/finetune_esc10.json")
    args = parser.parse_args()
    table = pd.read_csv(args.data_dir / "esc10" / "esc10.csv")
    classes = sorted(table["category"].unique())
    ids = [Path(f).stem for f in table["filename"]]
    rows = [(i, str(args.data_dir / "esc10" / f), "decode") for i, f in zip(ids, table["filename"])]
    y = np.array([classes.index(c) for c in table["category"]])
    folds = table["fold"].to_numpy() - 1
    task = TaskSpec("classification", "id", ["category"], classes=classes)
    unfreeze = args.unfreeze if args.unfreeze in ("all", "none") else int(args.unfreeze)
    options = FinetuneOptions.from_config(
        {
            "encoder": {"type": "aisfx"},
            "epochs": args.epochs,
            "patience": 3,
            "unfreeze": unfreeze,
            "lr_head": args.lr_head,
            "lr_encoder": args.lr_encoder,
            "device": args.device,
            "amp": args.amp,
        }
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="ft-esc10-") as tmp:
        d = Path(tmp)
        started = time.perf_counter()
        audio_store(rows, options.sample_rate, d / "train0.f32", d / "train0.npz", max_seconds=60)
        audio_store(rows[:10], options.sample_rate, d / "test0.f32", d / "test0.npz", max_seconds=60)
        decode_seconds = time.perf_counter() - started
        save_npz(d / "targets.npz", ids=np.array(ids), y=y, fold=folds)
        for fold in args.folds:
            info = finetune_fold(
                model_name="aisfx",
                options=options,
                train_stores=[d / "train0.npz"],
                test_stores=[d / "test0.npz"],
                targets_path=d / "targets.npz",
                task=task,
                fold=fold,
                seed=42,
                preds_out=d / f"fold{fold}.npz",
                model_out=d / f"fold{fold}.pt",
                history_out=d / f"fold{fold}.csv",
                checkpoint_dir=d / "ckpt" / str(fold),
                threads=args.threads,
            )
            preds = np.load(d / f"fold{fold}.npz")
            accuracy = score(y[folds == fold], preds["val__main"], task)["accuracy"]
            epoch_seconds = float(np.mean([h["seconds"] for h in info["history"]]))
            results.append(
                {
                    "fold": fold,
                    "accuracy": round(float(accuracy), 4),
                    "best_epoch": info["best_epoch"],
                    "epochs_run": info["epochs_run"],
                    "n_fit": info["n_fit"],
                    "epoch_seconds": round(epoch_seconds, 1),
                    "epoch_seconds_per_100_clips": round(100 * epoch_seconds / info["n_fit"], 1),
                    "job_seconds": round(info["fit_seconds"], 1),
                    "history": info["history"],
                }
            )
            print(json.dumps({k: v for k, v in results[-1].items() if k != "history"}), flush=True)
    out = {
        "dataset": "esc10",
        "encoder": "aisfx",
        "options": options.to_dict(),
        "decode_seconds": round(decode_seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "frozen_reference": "aisfx + best head, 5 folds: 0.9025 (linear) - 0.9125 (prompt_mixup/knn)",
        "folds": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "# Fine-tuned aisfx on ESC-10 (official folds, library level)",
        "",
        f"`.venv/bin/python benchmarks/finetune_esc10.py {' '.join(sys.argv[1:])}`; decode {out['decode_seconds']} s, "
        f"peak RSS {out['peak_rss_mb']} MB. Frozen reference: {out['frozen_reference']}.",
        "",
        "| fold | accuracy | best epoch | epochs | fit clips | s/epoch | s/epoch per 100 clips |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['fold']} | {r['accuracy']} | {r['best_epoch']} | {r['epochs_run']} | {r['n_fit']} | "
            f"{r['epoch_seconds']} | {r['epoch_seconds_per_100_clips']} |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
