"""Peak memory of the jobs that hold the whole embedding matrix (train, shift), against N.

``benchmarks/scale.py`` runs the whole workflow and shows the audio path (embed) flat in N; its train
and shift jobs grow with the matrix they read. This benchmark isolates those two steps so a change to
them is measured in minutes rather than the hour a 100k-clip workflow run takes: for each size it
writes N synthetic pooled embeddings (D=192, the scale benchmark's log-mel width) in 1024-clip chunks
as the embed step does, then runs, each in a fresh Python process, the library functions the
``train`` rule (``train_fold``, linear head, fold 0 of 5) and the ``shift`` rule (``shift_report``)
call, and records the process's peak RSS.

    .venv/bin/python benchmarks/train_memory.py [--sizes 1000 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIM = 192
CHUNK = 1024

# One step in a fresh interpreter: imports included, as in the rule's own job.
STEP = """
import json, resource, sys, time
from pathlib import Path
d = Path(sys.argv[1]); step = sys.argv[2]
train, test = sorted(d.glob("train*.npz")), [d / "test0.npz"]
started = time.perf_counter()
if step == "train":
    from audiofold.tasks import TaskSpec
    from audiofold.train import train_fold
    train_fold(train_shards=train, test_shards=test, targets_path=d / "targets.npz",
               task=TaskSpec("regression", "id", ["rating"]), fold=0, head_params={"type": "linear"},
               seed=0, model_out=d / "model.joblib", preds_out=d / "preds.npz")
else:
    from audiofold.shift import shift_report
    shift_report(train, test, "synthetic", 0, d / "shift.json")
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": time.perf_counter() - started}))
"""


def write_embeddings(folder: Path, n: int, seed: int = 0) -> None:
    from audiofold.io import save_npz

    rng = np.random.default_rng(seed)
    ids = np.array([f"tr{i:06d}" for i in range(n)])
    for c, start in enumerate(range(0, n, CHUNK)):
        block = ids[start : start + CHUNK]
        save_npz(folder / f"train{c:04d}.npz", ids=block, X=rng.standard_normal((len(block), DIM)).astype(np.float32))
    n_test = max(10, n // 10)
    save_npz(
        folder / "test0.npz",
        ids=np.array([f"te{i:06d}" for i in range(n_test)]),
        X=rng.standard_normal((n_test, DIM)).astype(np.float32),
    )
    y = rng.uniform(0, 5, n).astype(np.float32)
    save_npz(folder / "targets.npz", ids=ids, y=y, fold=np.arange(n) % 5)


def measure(n: int, scratch: Path) -> dict:
    folder = scratch / f"n{n}"
    folder.mkdir()
    write_embeddings(folder, n)
    row = {"n_train": n, "matrix_mb": round(n * DIM * 4 / 2**20, 1)}
    for step in ("train", "shift"):
        out = subprocess.run(
            [sys.executable, "-c", STEP, str(folder), step], capture_output=True, text=True, check=True
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        row[step] = {"peak_rss_mb": round(result["peak_rss_mb"], 1), "seconds": round(result["seconds"], 2)}
    return row


def write_tables(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_memory.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "# Peak RSS of the jobs that read the whole embedding matrix (benchmarks/train_memory.py)",
        "",
        f"Synthetic pooled embeddings, D={DIM} float32, {CHUNK}-clip chunks; train = `train_fold` (linear head, "
        "fold 0 of 5, test = N/10 clips); shift = `shift_report`. Each in a fresh process (imports included).",
        "",
        "| train clips | float32 matrix MB | train peak RSS MB (s) | shift peak RSS MB (s) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n_train']} | {r['matrix_mb']} | {r['train']['peak_rss_mb']} ({r['train']['seconds']}) | "
            f"{r['shift']['peak_rss_mb']} ({r['shift']['seconds']}) |"
        )
    (out / "train_memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000, 100000])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for n in args.sizes:
            rows.append(measure(n, Path(scratch)))
            print(json.dumps(rows[-1]), flush=True)
    write_tables(rows, args.out)


if __name__ == "__main__":
    main()
