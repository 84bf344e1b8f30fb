"""Which blend-method choice pays on real candidates: the nested score of each selection rule.

``blend.method: auto`` cross-fits grid, greedy and the stacker over the folds and keeps the best
on the blend criterion (log loss for classification). Two changes look tempting when a nested
best single beats the nested blend on accuracy: let ``auto`` also pick the best single candidate
alone, and pick on the task's primary metric (accuracy) instead of the criterion. This benchmark
scores every such rule the honest way, ``audiofold.ensemble.blend_nested.nested_blend`` (calibration, the choice
and the weights re-made per outer fold), on the OOF files of a kept ``benchmarks/quality.py`` run
(``--keep DIR``), for the whole candidate pool and for sub-pools (one backbone, all but one
backbone, one head family, no teacher-student round, main variants only), against the nested best
single. The all-but-one pools say what each backbone adds to the blend, scored nested.

Rules: ``auto`` (as shipped), ``auto+single`` (single among the compared methods), ``auto on
primary`` (compared on the primary metric, the criterion breaking ties) and ``auto on primary
+single``; each re-chooses per outer fold, then delegates to ``fit_blend`` with the chosen method.

    PYTHONPATH=src .venv/bin/python benchmarks/blend_selection.py --run KEEP/esc10 [--out benchmarks/results]
        [--rules auto] [--name blend_selection_esc10_light]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from unittest import mock

import numpy as np
import yaml

from audiofold import metrics
from audiofold.ensemble import blend, blend_nested
from audiofold.ensemble.blend import applicable_methods, cross_fit, load_candidates
from audiofold.ensemble.options import BlendOptions
from audiofold.tasks import TaskSpec, load_task

ROOT = Path(__file__).resolve().parents[1]
PSEUDO_SUFFIX = "+pl"
SHORT = {"single": "si", "grid": "gd", "greedy": "gy", "stack": "st"}
RULES = {  # name -> (single among the methods, compared on the primary metric)
    "auto": (False, False),
    "auto+single": (True, False),
    "auto on primary": (False, True),
    "auto on primary+single": (True, True),
}


def pools(names: list[str]) -> dict[str, list[str]]:
    """The whole pool and its sub-pools with at least two candidates, in a fixed order."""
    parts = {name: name.split("/") for name in names}
    out = {"all": names, f"no {PSEUDO_SUFFIX}": [n for n in names if not n.endswith(PSEUDO_SUFFIX)]}
    backbones = sorted({p[0] for p in parts.values()})
    for backbone in backbones:
        out[f"backbone {backbone}"] = [n for n in names if parts[n][0] == backbone]
    for backbone in backbones if len(backbones) > 1 else ():  # what each backbone adds to the rest
        out[f"without {backbone}"] = [n for n in names if parts[n][0] != backbone]
    for head in sorted({p[1] for p in parts.values()}):
        out[f"head {head}"] = [n for n in names if parts[n][1] == head]
    out["main variants"] = [n for n in names if n.endswith("/main")]
    return {pool: members for pool, members in out.items() if len(members) >= 2}


def rule_fit_blend(with_single: bool, on_primary: bool):
    """A stand-in for ``fit_blend`` under ``method: auto`` that compares the methods by this rule,
    then fits the chosen one with ``fit_blend`` itself (per-class weights and all)."""
    real_fit_blend = blend.fit_blend

    def fit(candidates, y, folds, task: TaskSpec, options: BlendOptions = BlendOptions()):
        if options.method != "auto":
            return real_fit_blend(candidates, y, folds, task, options)
        methods = applicable_methods("auto", len(candidates), options.max_candidates)
        methods = (["single"] if with_single else []) + methods
        criterion, criterion_greater, criterion_fn = blend._criterion(task)
        primary, primary_greater = metrics.primary(task.kind)
        keys, scores = {}, {}
        for m in methods:
            held_out = cross_fit(m, candidates, y, folds, task, options)
            scores[m] = float(criterion_fn(y, held_out))
            key = scores[m] if criterion_greater else -scores[m]
            if on_primary:
                value = metrics.METRICS[primary](y, held_out, task)
                keys[m] = (value if primary_greater else -value, key)
            else:
                keys[m] = (key,)
        chosen = max(methods, key=lambda m: keys[m])  # the first of equals: the simplest
        result, oof = real_fit_blend(candidates, y, folds, task, dataclasses.replace(options, method=chosen))
        return {**result, "requested": "auto", "method_scores": scores}, oof

    return fit


def score_pool(candidates, y, folds, task: TaskSpec, rules=tuple(RULES)) -> dict:
    primary = metrics.primary(task.kind)[0]
    single, single_chosen = blend_nested.nested_best_single(candidates, y, folds, task)
    row = {"n_candidates": len(candidates), "best_single_nested": metrics.METRICS[primary](y, single, task)}
    for rule in rules:
        with_single, on_primary = RULES[rule]
        with mock.patch.object(blend_nested, "fit_blend", rule_fit_blend(with_single, on_primary)):
            P, chosen = blend_nested.nested_blend(candidates, y, folds, task)
        row[rule] = {
            "nested": metrics.METRICS[primary](y, P, task),
            "methods": [c["method"] for c in chosen],
            "scores": {name: metrics.METRICS[name](y, P, task) for name in metrics.metrics_for(task.kind)},
        }
    return row


def markdown(result: dict) -> str:
    primary = result["primary"]
    rules = [rule for rule in RULES if rule in next(iter(result["pools"].values()))]
    lines = [
        "# Blend-method selection rules, nested (benchmarks/blend_selection.py)",
        "",
        f"Run: `{result['run']}` ({result['n_rows']} OOF rows, {result['n_folds']} folds, task {result['task']}). "
        f"Nested {primary} of each rule (every choice re-made per outer fold) and of the nested best single; "
        "methods chosen per outer fold in brackets (si single, gd grid, gy greedy, st stack).",
        "",
        f"Candidates: backbones {', '.join(result['setup']['backbones'])}; heads {', '.join(result['setup']['heads'])}"
        + ("; with the teacher-student round (+pl)" if result["setup"]["pseudo_labels"] else "")
        + ". The verdict below holds for these candidates; rerun it on a kept run of another data set.",
        "",
        "| pool | candidates | best single nested | " + " | ".join(rules) + " |",
        "|---|---|---|" + "---|" * len(rules),
    ]
    for pool, row in result["pools"].items():
        cells = " | ".join(
            f"{row[rule]['nested']:.4f} ({' '.join(SHORT[m] for m in row[rule]['methods'])})" for rule in rules
        )
        lines.append(f"| {pool} | {row['n_candidates']} | {row['best_single_nested']:.4f} | {cells} |")
    sign = 1 if metrics.GREATER_IS_BETTER[primary] else -1
    whole = result["pools"]["all"]["auto"]["scores"]
    left_out = {pool.split(" ", 1)[1]: row for pool, row in result["pools"].items() if pool.startswith("without ")}
    if left_out:
        lines += [
            "",
            "What each backbone adds to the shipped `auto` blend, nested: all candidates against all but that "
            "backbone's (positive: better with it):",
            "",
        ]
        for backbone, row in left_out.items():
            gains = ", ".join(
                f"{name} {(1 if metrics.GREATER_IS_BETTER[name] else -1) * (whole[name] - value):+.4f}"
                for name, value in row["auto"]["scores"].items()
            )
            lines.append(f"- {backbone}: {gains}")
    if len(rules) > 1:
        lines += ["", "Against the shipped `auto`, per pool (better / equal / worse):", ""]
    for rule in rules[1:]:
        diffs = [sign * (row[rule]["nested"] - row["auto"]["nested"]) for row in result["pools"].values()]
        better, worse = sum(d > 1e-12 for d in diffs), sum(d < -1e-12 for d in diffs)
        lines.append(f"- {rule}: {better} / {len(diffs) - better - worse} / {worse}, mean {np.mean(diffs):+.4f}")
    beaten = sum(
        sign * (row["auto"]["nested"] - row["best_single_nested"]) < -1e-12 for row in result["pools"].values()
    )
    lines += [
        "",
        f"Pools where the shipped `auto` loses to the nested best single: {beaten} of {len(result['pools'])}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="A kept quality.py run folder (holds results/oof).")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    parser.add_argument("--name", default=None, help="Output file stem (default: blend_selection_{run folder}).")
    parser.add_argument(
        "--rules", nargs="+", choices=list(RULES), default=list(RULES), help="Rules to score (auto is always scored)."
    )
    args = parser.parse_args()
    task = load_task(args.run / "results/task.json")
    paths = {
        f"{p.parent.parent.name}/{p.parent.name}": str(p)
        for p in sorted((args.run / "results/oof").glob("*/*/oof.npz"))
    }
    if not paths:
        raise SystemExit(f"{args.run}: no results/oof/*/*/oof.npz; run benchmarks/quality.py --keep first.")
    candidates, _, oof, _ = load_candidates(paths)
    config = yaml.safe_load((args.run / "config.yaml").read_text())
    y, folds = oof["y"], oof["fold"]
    result = {
        "run": args.run.name,
        "task": task.kind,
        "primary": metrics.primary(task.kind)[0],
        "n_rows": int(len(y)),
        "n_folds": int(len(np.unique(folds))),
        "setup": {key: sorted(config.get(key) or {}) for key in ("backbones", "heads")}
        | {"pseudo_labels": bool((config.get("pseudo_labels") or {}).get("enabled"))},
        "pools": {},
    }
    rules = ["auto"] + [rule for rule in args.rules if rule != "auto"]
    for pool, members in pools(list(candidates)).items():
        result["pools"][pool] = score_pool({n: candidates[n] for n in members}, y, folds, task, rules)
        print(pool, json.dumps(result["pools"][pool]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.name or f"blend_selection_{args.run.name}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(result) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
