"""Time of the blend-vs-best-single paired bootstrap (``audiofold.bootstrap.paired_bootstrap``,
1000 resamples, every metric of the kind) at competition sizes, against scoring copied rows with the
registry metrics (``metrics.METRICS``) as a plain bootstrap would (timed on a few resamples and
scaled to 1000). One thread, as the blend_nested rule runs. Synthetic predictions: two candidates
of different noise around the targets. Writes benchmarks/results/bootstrap_speed.{json,md}.

    PYTHONPATH=src .venv/bin/python benchmarks/bootstrap_speed.py [--naive-resamples 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from audiofold import metrics
from audiofold.bootstrap import paired_bootstrap
from audiofold.tasks import TaskSpec

ROOT = Path(__file__).resolve().parents[1]
RESAMPLES = 1000
# (kind, rows, classes or targets): ESC-50 and FSD 2019 curated sizes, and 4x larger
CASES = [
    ("regression", 5000, 1),
    ("multitarget", 20000, 2),
    ("classification", 2000, 50),
    ("classification", 20000, 50),
    ("multilabel", 4970, 80),
    ("multilabel", 20000, 80),
]


def synthetic(kind: str, rows: int, width: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    names = [f"c{i}" for i in range(width)]
    if kind in ("regression", "multitarget"):
        task = TaskSpec(kind, "id", names)
        y = rng.normal(size=(rows, width))
        return task, y, y + rng.normal(0, 0.5, y.shape), y + rng.normal(0, 0.6, y.shape)
    if kind == "classification":
        task = TaskSpec(kind, "id", ["label"], classes=names)
        y = rng.integers(0, width, rows)
        onehot = np.eye(width)[y]
        candidates = [np.exp(2 * onehot + rng.normal(0, s, onehot.shape)) for s in (1.0, 1.2)]
        return task, y, *(P / P.sum(axis=1, keepdims=True) for P in candidates)
    task = TaskSpec(kind, "id", ["labels"], classes=names, label_sep=",")
    y = (rng.random((rows, width)) < 0.02).astype(np.float32)
    y[np.arange(rows), rng.integers(0, width, rows)] = 1
    return task, y, y + rng.normal(0, 0.5, y.shape), y + rng.normal(0, 0.6, y.shape)


def naive_seconds(task, y, P_a, P_b, resamples: int) -> float:
    """Per-1000 time of scoring copied rows with every registry metric, twice per resample."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        for name in metrics.metrics_for(task.kind):
            metrics.METRICS[name](y[rows], P_a[rows], task) - metrics.METRICS[name](y[rows], P_b[rows], task)
    return (time.perf_counter() - start) * RESAMPLES / resamples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive-resamples", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with threadpool_limits(1):
        for kind, n, width in CASES:
            task, y, P_a, P_b = synthetic(kind, n, width)
            start = time.perf_counter()
            result = paired_bootstrap(y, P_a, P_b, task, n_resamples=RESAMPLES)
            seconds = time.perf_counter() - start
            entry = {
                "kind": kind,
                "rows": n,
                "width": width,
                "seconds": round(seconds, 2),
                "naive_seconds_estimate": round(naive_seconds(task, y, P_a, P_b, args.naive_resamples), 1),
                "primary_interval": [
                    round(result["metrics"][metrics.primary(kind)[0]][k], 4) for k in ("ci_low", "ci_high")
                ],
            }
            rows.append(entry)
            print(json.dumps(entry), flush=True)
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "resamples": RESAMPLES,
        "naive_resamples": args.naive_resamples,
    }
    out = ROOT / "benchmarks" / "results"
    (out / "bootstrap_speed.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=1) + "\n")
    lines = [
        "# Paired bootstrap speed (benchmarks/bootstrap_speed.py)",
        "",
        f"Measured {meta['date']} on this project's 2-core CPU, one thread: `paired_bootstrap` with "
        f"{RESAMPLES} resamples and every metric of the kind (weighted per-row statistics), against scoring "
        f"copied rows with the registry metrics ({args.naive_resamples} resamples timed, scaled to {RESAMPLES}). "
        "Raw numbers in `bootstrap_speed.json`.",
        "",
        "| kind | rows | classes / targets | paired_bootstrap | copied rows (estimate) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['kind']} | {r['rows']} | {r['width']} | {r['seconds']:.1f} s | {r['naive_seconds_estimate']:.0f} s |"
        for r in rows
    ]
    (out / "bootstrap_speed.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
