"""Peak memory and epoch time of one fine-tuning job (``finetune_fold``) against the number of clips.

For each size N it writes N synthetic clips (``--seconds`` of noise plus a class tone) straight into an
audio store at the encoder's rate (the format ``audio_store`` writes), then runs, in a fresh Python
process, what the ``finetune`` rule runs for fold 0 of 5: ``--epochs`` epochs on 80 % of the clips,
early stopping on the fold's rows, predictions for the fold and a test set of N/10 clips. It records the
process's peak RSS and the seconds per epoch per 100 training clips. A job that held the audio in
memory would grow by N x seconds x rate x 4 bytes (aisfx, 5 s: 0.88 MB a clip).

    .venv/bin/python benchmarks/finetune_memory.py [--encoder aisfx] [--sizes 100 400] [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENCODERS = {
    "aisfx": {"type": "aisfx"},
    "cnn": {"type": "cnn", "sample_rate": 16000, "n_mels": 64, "channels": [32, 64, 128]},
}

STEP = """
import json, resource, sys, time
from pathlib import Path
from audiofold.finetune import FinetuneOptions, finetune_fold
from audiofold.tasks import TaskSpec
d = Path(sys.argv[1]); options = FinetuneOptions.from_config(json.loads(sys.argv[2]))
started = time.perf_counter()
info = finetune_fold(model_name="bench", options=options, train_stores=[d / "train0.npz"],
    test_stores=[d / "test0.npz"], targets_path=d / "targets.npz",
    task=TaskSpec("classification", "id", ["label"], classes=[str(c) for c in range(10)]), fold=0, seed=0,
    preds_out=d / "preds.npz", model_out=d / "model.pt", history_out=d / "history.csv",
    checkpoint_dir=d / "ckpt", threads=int(sys.argv[3]))
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": time.perf_counter() - started,
                  "epoch_seconds": [h["seconds"] for h in info["history"]], "n_fit": info["n_fit"]}))
"""


def write_store(folder: Path, name: str, n: int, sample_rate: int, seconds: float, seed: int) -> np.ndarray:
    """``n`` clips written as an audio store (index + samples); returns their class labels."""
    from audiofold.io import save_npz

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    length = int(seconds * sample_rate)
    t = np.arange(length) / sample_rate
    with open(folder / f"{name}.f32", "wb") as sink:
        for label in labels:
            wave = 0.1 * rng.standard_normal(length) + 0.3 * np.sin(2 * np.pi * (200 + 150 * label) * t)
            wave.astype("<f4").tofile(sink)
    ids = np.array([f"{name}{i:06d}" for i in range(n)])
    save_npz(folder / f"{name}.npz", ids=ids, offsets=np.arange(n + 1) * length, sample_rate=sample_rate)
    return labels


def run(n: int, encoder: str, epochs: int, seconds: float, threads: int, tta_crops: int) -> dict:
    from audiofold.finetune_encoders import encoder_sample_rate
    from audiofold.io import save_npz

    options = {
        "encoder": ENCODERS[encoder],
        "epochs": epochs,
        "patience": epochs,
        "crop_seconds": seconds,
        "tta_crops": tta_crops,
        "validation": "fold",
        "batch_size": 16,
    }
    rate = encoder_sample_rate(ENCODERS[encoder])
    with tempfile.TemporaryDirectory(prefix="ft-memory-") as tmp:
        d = Path(tmp)
        labels = write_store(d, "train0", n, rate, seconds, seed=0)
        write_store(d, "test0", max(10, n // 10), rate, seconds, seed=1)
        ids = np.array([f"train0{i:06d}" for i in range(n)])
        save_npz(d / "targets.npz", ids=ids, y=labels, fold=np.arange(n) % 5)
        proc = subprocess.run(
            [sys.executable, "-c", STEP, str(d), json.dumps(options), str(threads)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads)},
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    per_epoch = float(np.mean(out["epoch_seconds"]))
    return {
        "n_clips": n,
        "n_fit": out["n_fit"],
        "peak_rss_mb": round(out["peak_rss_mb"], 1),
        "job_seconds": round(out["seconds"], 1),
        "epoch_seconds": round(per_epoch, 1),
        "epoch_seconds_per_100_clips": round(100 * per_epoch / out["n_fit"], 1),
        "store_mb": round(n * seconds * rate * 4 / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", choices=sorted(ENCODERS), default="aisfx")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 400])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tta-crops", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/finetune_memory.json")
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        rows.append(run(n, args.encoder, args.epochs, args.seconds, args.threads, args.tta_crops))
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "encoder": args.encoder,
        "epochs": args.epochs,
        "clip_seconds": args.seconds,
        "threads": args.threads,
        "tta_crops": args.tta_crops,
        "machine": f"{platform.processor() or platform.machine()}, {args.threads} threads",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Fine-tuning memory and speed ({args.encoder}, {args.seconds:g} s clips, {args.threads} threads)",
        "",
        "`.venv/bin/python benchmarks/finetune_memory.py " + " ".join(sys.argv[1:]) + "`",
        "",
        "| clips | fit rows | store MB | peak RSS MB | s/epoch | s/epoch per 100 clips | job s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n_clips']} | {r['n_fit']} | {r['store_mb']} | {r['peak_rss_mb']} | {r['epoch_seconds']} | "
            f"{r['epoch_seconds_per_100_clips']} | {r['job_seconds']} |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
