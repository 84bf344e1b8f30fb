"""Blend time for 6, 12 and 24 candidates on synthetic OOF predictions, per method and task kind.

Candidates are the targets plus independent noise of growing spread (so blending pays), on
`--rows` rows in 5 folds. Times `audiofold.blend.fit_blend` (the whole blend step: with `auto`,
every applicable method cross-fitted over the folds, then the winner fitted on every row) and the
nested score (`audiofold.nested.nested_blend`, calibration off: the blend step re-run per outer
fold). One thread (as a blend job runs). Writes benchmarks/results/blend_speed.{json,md}.

``--per-class``: instead, multilabel per-class weights (``blend.per_class``) at scale: 24 candidates x
80 classes (3 % positives, candidates of growing noise), greedy with per_class false / true / auto
(auto cross-fits greedy with and without) and the nested score of auto; writes
benchmarks/results/blend_speed_per_class.{json,md}.

    PYTHONPATH=src .venv/bin/python benchmarks/blend_speed.py [--rows 400] [--repeats 1] [--per-class]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from scipy.special import softmax
from threadpoolctl import threadpool_limits

from audiofold.blend import fit_blend
from audiofold.nested import nested_blend
from audiofold.tasks import TaskSpec

ROOT = Path(__file__).resolve().parents[1]
TASKS = {
    "regression": TaskSpec("regression", "id", ["score"]),
    "classification": TaskSpec("classification", "id", ["label"], classes=["a", "b", "c", "d", "e"]),
    "multilabel": TaskSpec("multilabel", "id", ["labels"], classes=[f"c{i}" for i in range(10)], label_sep=","),
}
SIZES = (6, 12, 24)
METHODS = ("grid", "greedy", "stack", "auto")


def synthetic(kind: str, n_candidates: int, rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    spread = [1 + 0.1 * i for i in range(n_candidates)]
    if kind == "regression":
        y = rng.normal(size=(rows, 1))
        return y, {f"m{i:02d}": y + rng.normal(0, s, size=y.shape) for i, s in enumerate(spread)}
    if kind == "classification":
        y = rng.integers(0, 5, rows)
        onehot = 2 * np.eye(5)[y]
        return y, {
            f"m{i:02d}": softmax(onehot + rng.normal(0, s, size=(rows, 5)), axis=1) for i, s in enumerate(spread)
        }
    y = (rng.random((rows, 10)) < 0.2).astype(np.float32)
    return y, {f"m{i:02d}": y + rng.normal(0, s, size=y.shape) for i, s in enumerate(spread)}


def timed(repeats: int, fn, *args, **kwargs) -> float:
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        fn(*args, **kwargs)
        best = min(best, time.perf_counter() - started)
    return float(best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--per-class", action="store_true", help="time multilabel per-class weights instead")
    args = parser.parse_args()
    if args.per_class:
        per_class(args)
        return
    folds = np.arange(args.rows) % 5
    rows = []
    with threadpool_limits(1):
        for kind, task in TASKS.items():
            for n in SIZES:
                y, candidates = synthetic(kind, n, args.rows)
                for method in METHODS:
                    # max_candidates: the grid takes every candidate when run alone (6 only: its size
                    # grows as C(10 + n - 1, n - 1)); `auto` keeps the default 6, so it skips the grid above 6
                    if method == "grid" and n > 6:
                        continue
                    options = {"method": method, "max_candidates": 6}
                    result, _ = fit_blend(candidates, y, folds, task, **options)
                    seconds = timed(args.repeats, fit_blend, candidates, y, folds, task, **options)
                    entry = {
                        "kind": kind,
                        "candidates": n,
                        "method": method,
                        "blend_s": round(seconds, 3),
                        "chosen": result["method"],
                        "score": round(result["score"], 4),
                        "criterion": result["criterion"],
                    }
                    if method == "auto":
                        nested = timed(1, nested_blend, candidates, y, folds, task, calibrate=False, **options)
                        entry["nested_s"] = round(nested, 3)
                        entry["method_scores"] = {m: round(v, 4) for m, v in result["method_scores"].items()}
                    rows.append(entry)
                    print(json.dumps(entry), flush=True)
    out = ROOT / "benchmarks/results"
    meta = {
        "rows": args.rows,
        "folds": 5,
        "repeats": args.repeats,
        "threads": 1,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "measured": time.strftime("%Y-%m-%d"),
    }
    (out / "blend_speed.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=1) + "\n")
    lines = [
        "# Blend speed (benchmarks/blend_speed.py)",
        "",
        f"Measured {meta['measured']} on this project's 2-core CPU (shared with other jobs), one thread, "
        f"{args.rows} synthetic OOF rows in 5 folds; best of {args.repeats}. `blend` = `fit_blend` (the rule's "
        "whole blend step; `auto` cross-fits every applicable method over the folds, then fits the winner); "
        "`nested` = `nested_blend` with calibration off (the step re-run per outer fold). Grid: step 0.1, "
        "6 candidates at most (3003 points). Raw numbers in `blend_speed.json`.",
        "",
        "| kind | candidates | grid | greedy (25 rounds) | stack | auto | auto nested | auto chose |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in TASKS:
        for n in SIZES:
            got = {r["method"]: r for r in rows if r["kind"] == kind and r["candidates"] == n}
            cells = " | ".join(f"{got[m]['blend_s']:.2f} s" if m in got else "n/a (> 6)" for m in METHODS)
            lines.append(f"| {kind} | {n} | {cells} | {got['auto']['nested_s']:.2f} s | {got['auto']['chosen']} |")
    (out / "blend_speed.md").write_text("\n".join(lines) + "\n")


def _meta(args) -> dict:
    return {
        "rows": args.rows,
        "folds": 5,
        "repeats": args.repeats,
        "threads": 1,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "measured": time.strftime("%Y-%m-%d"),
    }


def per_class(args, n_candidates: int = 24, n_classes: int = 80) -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((args.rows, n_classes)) < 0.03).astype(np.float32)
    candidates = {f"m{i:02d}": y + rng.normal(0, 1 + 0.05 * i, size=y.shape) for i in range(n_candidates)}
    task = TaskSpec("multilabel", "id", ["labels"], classes=[f"c{c}" for c in range(n_classes)], label_sep=",")
    folds = np.arange(args.rows) % 5
    rows = []
    with threadpool_limits(1):
        for mode in (False, True, "auto"):
            options = {"method": "greedy", "per_class": mode}
            result, _ = fit_blend(candidates, y, folds, task, **options)
            entry = {
                "per_class": mode,
                "blend_s": round(timed(args.repeats, fit_blend, candidates, y, folds, task, **options), 3),
                "applied": result["per_class"]["applied"],
                "score": round(result["score"], 4),
                "scores": {k: round(v, 4) for k, v in result["per_class"]["scores"].items()},
            }
            if mode == "auto":
                entry["nested_s"] = round(
                    timed(1, nested_blend, candidates, y, folds, task, calibrate=False, **options), 3
                )
            rows.append(entry)
            print(json.dumps(entry), flush=True)
    out = ROOT / "benchmarks/results"
    meta = {**_meta(args), "candidates": n_candidates, "classes": n_classes}
    (out / "blend_speed_per_class.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=1) + "\n")
    lines = [
        "# Per-class blend weights: speed (benchmarks/blend_speed.py --per-class)",
        "",
        f"Measured {meta['measured']} on this project's 2-core CPU (shared with other jobs), one thread, "
        f"{args.rows} synthetic OOF rows in 5 folds, {n_candidates} candidates x {n_classes} classes; best of "
        f"{args.repeats}. `blend` = `fit_blend` with blend.method greedy (auto: the greedy cross-fitted with and "
        "without per-class weights, then the winner fitted on every row); `nested` = `nested_blend`, calibration "
        "off. Scores: LWLRAP (in-sample; auto: cross-validated global / per class).",
        "",
        "| blend.per_class | blend | nested | kept | LWLRAP |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        nested = f"{r['nested_s']:.2f} s" if "nested_s" in r else ""
        scores = ", ".join(f"{k} {v:.4f}" for k, v in r["scores"].items()) or f"{r['score']:.4f}"
        lines.append(f"| {str(r['per_class']).lower()} | {r['blend_s']:.2f} s | {nested} | {r['applied']} | {scores} |")
    (out / "blend_speed_per_class.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
