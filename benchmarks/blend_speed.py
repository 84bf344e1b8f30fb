"""Blend time for 6, 12 and 24 candidates on synthetic OOF predictions, per method and task kind.

Candidates are the targets plus independent noise of growing spread (so blending pays), on
`--rows` rows in 5 folds. Times `audiofold.ensemble.blend.fit_blend` (the whole blend step: with `auto`,
every applicable method cross-fitted over the folds, then the winner fitted on every row) and the
nested score (`audiofold.ensemble.blend_nested.nested_blend`, calibration off: the blend step re-run per outer
fold). One thread (as a blend job runs). Writes benchmarks/results/blend_speed.{json,md}.

``--per-class``: instead, multilabel per-class weights (``blend.per_class``) at scale: 24 candidates x
80 classes (3 % positives, candidates of growing noise), greedy with per_class false / true / auto
(auto cross-fits greedy with and without) and the nested score of auto; writes
benchmarks/results/blend_speed_per_class.{json,md}.

``--bootstrap``: instead, the blend_nested step's paired bootstrap (nested blend vs nested best single,
1000 resamples, every metric of the kind) at competition sizes, against scoring copied rows with the
registry metrics as a plain bootstrap would (``--naive-resamples`` timed, scaled to 1000); writes
benchmarks/results/blend_speed_bootstrap.{json,md}.

    PYTHONPATH=src .venv/bin/python benchmarks/blend_speed.py [--rows 400] [--repeats 1] [--per-class | --bootstrap]
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

from audiofold import metrics
from audiofold.ensemble.blend import fit_blend
from audiofold.ensemble.blend_nested import nested_blend
from audiofold.ensemble.bootstrap import paired_bootstrap
from audiofold.ensemble.options import BlendOptions
from audiofold.tasks import TaskSpec

ROOT = Path(__file__).resolve().parents[1]
TASKS = {
    "regression": TaskSpec("regression", "id", ["score"]),
    "classification": TaskSpec("classification", "id", ["label"], classes=["a", "b", "c", "d", "e"]),
    "multilabel": TaskSpec("multilabel", "id", ["labels"], classes=[f"c{i}" for i in range(10)], label_sep=","),
}
SIZES = (6, 12, 24)
METHODS = ("grid", "greedy", "stack", "auto")
BOOTSTRAP_RESAMPLES = 1000
# (kind, rows, classes or targets): ESC-50 and FSD 2019 curated sizes, and 4x larger
BOOTSTRAP_CASES = [
    ("regression", 5000, 1),
    ("multitarget", 20000, 2),
    ("classification", 2000, 50),
    ("classification", 20000, 50),
    ("multilabel", 4970, 80),
    ("multilabel", 20000, 80),
]


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
    parser.add_argument("--bootstrap", action="store_true", help="time the blend-vs-single bootstrap instead")
    parser.add_argument("--naive-resamples", type=int, default=5, help="with --bootstrap: copied-row resamples")
    args = parser.parse_args()
    if args.per_class:
        per_class(args)
        return
    if args.bootstrap:
        bootstrap(args)
        return
    folds = np.arange(args.rows) % 5
    rows = []
    with threadpool_limits(1):
        for kind, task in TASKS.items():
            for n in SIZES:
                y, candidates = synthetic(kind, n, args.rows)
                for method in METHODS:
                    # max_candidates: the grid takes every candidate when run alone (6 only: its size
                    # grows as C(10 + n - 1, n - 1)); `auto` keeps the default 6, so it skips the grid above 6.
                    # per_class: global weights only (--per-class times the per-class ones)
                    if method == "grid" and n > 6:
                        continue
                    options = BlendOptions(method=method, max_candidates=6, per_class=False)
                    result, _ = fit_blend(candidates, y, folds, task, options)
                    seconds = timed(args.repeats, fit_blend, candidates, y, folds, task, options)
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
                        nested = timed(1, nested_blend, candidates, y, folds, task, options, calibrate=False)
                        entry["nested_s"] = round(nested, 3)
                        entry["method_scores"] = {m: round(v, 4) for m, v in result["method_scores"].items()}
                    rows.append(entry)
                    print(json.dumps(entry), flush=True)
    meta = _meta(args)
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
    _write("blend_speed", meta, rows, lines)


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


def _write(name: str, meta: dict, rows: list[dict], lines: list[str]) -> None:
    """benchmarks/results/{name}.json (meta + raw rows) and {name}.md (the table)."""
    out = ROOT / "benchmarks/results"
    (out / f"{name}.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=1) + "\n")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")


def per_class(args, n_candidates: int = 24, n_classes: int = 80) -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((args.rows, n_classes)) < 0.03).astype(np.float32)
    candidates = {f"m{i:02d}": y + rng.normal(0, 1 + 0.05 * i, size=y.shape) for i in range(n_candidates)}
    task = TaskSpec("multilabel", "id", ["labels"], classes=[f"c{c}" for c in range(n_classes)], label_sep=",")
    folds = np.arange(args.rows) % 5
    rows = []
    with threadpool_limits(1):
        for mode in (False, True, "auto"):
            options = BlendOptions(method="greedy", per_class=mode)
            result, _ = fit_blend(candidates, y, folds, task, options)
            entry = {
                "per_class": mode,
                "blend_s": round(timed(args.repeats, fit_blend, candidates, y, folds, task, options), 3),
                "applied": result["per_class"]["applied"],
                "score": round(result["score"], 4),
                "scores": {k: round(v, 4) for k, v in result["per_class"]["scores"].items()},
            }
            if mode == "auto":
                entry["nested_s"] = round(
                    timed(1, nested_blend, candidates, y, folds, task, options, calibrate=False), 3
                )
            rows.append(entry)
            print(json.dumps(entry), flush=True)
    meta = {**_meta(args), "candidates": n_candidates, "classes": n_classes}
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
    _write("blend_speed_per_class", meta, rows, lines)


def bootstrap_case(kind: str, rows: int, width: int, seed: int = 0):
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
    return (time.perf_counter() - start) * BOOTSTRAP_RESAMPLES / resamples


def bootstrap(args) -> None:
    rows = []
    with threadpool_limits(1):
        for kind, n, width in BOOTSTRAP_CASES:
            task, y, P_a, P_b = bootstrap_case(kind, n, width)
            started = time.perf_counter()
            result = paired_bootstrap(y, P_a, P_b, task, n_resamples=BOOTSTRAP_RESAMPLES)
            seconds = time.perf_counter() - started
            primary = result["metrics"][metrics.primary(kind)[0]]
            entry = {
                "kind": kind,
                "rows": n,
                "width": width,
                "seconds": round(seconds, 2),
                "naive_seconds_estimate": round(naive_seconds(task, y, P_a, P_b, args.naive_resamples), 1),
                "primary_interval": [round(primary["ci_low"], 4), round(primary["ci_high"], 4)],
            }
            rows.append(entry)
            print(json.dumps(entry), flush=True)
    machine = {k: v for k, v in _meta(args).items() if k in ("threads", "machine", "python", "measured")}
    meta = {**machine, "resamples": BOOTSTRAP_RESAMPLES, "naive_resamples": args.naive_resamples}
    lines = [
        "# Paired bootstrap speed (benchmarks/blend_speed.py --bootstrap)",
        "",
        f"Measured {meta['measured']} on this project's 2-core CPU, one thread: `bootstrap.paired_bootstrap` "
        f"(the blend_nested step's blend-vs-best-single comparison) with {BOOTSTRAP_RESAMPLES} resamples and every "
        "metric of the kind, scored from weighted per-row statistics, against scoring copied rows with the "
        f"registry metrics ({args.naive_resamples} resamples timed, scaled to {BOOTSTRAP_RESAMPLES}). Two synthetic "
        "candidates of different noise. Raw numbers in `blend_speed_bootstrap.json`.",
        "",
        "| kind | rows | classes / targets | paired_bootstrap | copied rows (estimate) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['kind']} | {r['rows']} | {r['width']} | {r['seconds']:.2f} s | {r['naive_seconds_estimate']:.0f} s |"
        for r in rows
    ]
    _write("blend_speed_bootstrap", meta, rows, lines)


if __name__ == "__main__":
    main()
