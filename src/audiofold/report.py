"""The run's summary: ``metrics.json`` (OOF scores per backbone x head x fold, calibration, blend) and plots.

The blend has two scores. ``blend.in_sample``: the blend as submitted (after the rounding
decision) scored on the OOF rows its calibration, blend method, pruning, weights and rounding were
chosen on, so it flatters (a stacker's own predictions are cross-fitted, the rest is not).
``blend.nested``: every one of those choices re-made per outer fold on the other folds only
(``audiofold.ensemble.blend_nested``), the estimate of what the submission scores. ``blend.method`` names the
method used (``method_requested``: the configured one; ``method_scores``: the cross-validated
comparison ``auto`` chose by). Multilabel: ``blend.per_class`` (per-class weights requested,
applied, cross-validated scores of global and per-class) and ``blend.labels`` (label-string
thresholds: ``in_sample`` F1 of the global and the per-class thresholds chosen and scored on the
same OOF rows, ``nested`` F1 with them re-chosen per outer fold, and which the submission uses).
``blend.shift_weighted``: where the shift check fired, the nested OOF rows scored with the shift
step's importance weights (``shift_weighted_entry``), beside the nested score; it chooses nothing.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, f1_score

from . import metrics
from .errors import DataError
from .io import atomic_path, load_npz, read_json, write_csv, write_json
from .shift import effective_sample_size
from .tasks import TaskSpec

IN_SAMPLE = "BLEND in-sample (as submitted)"
NESTED = "BLEND nested (honest)"
NESTED_SINGLE = "BEST SINGLE nested (honest)"
SHIFT_WEIGHTED = "BLEND nested, shift-weighted (estimate)"
SHIFT_WEIGHTED_NOTE = (
    "the nested blend's OOF rows weighted by the adversarial classifier's odds that each is a test clip "
    "(importance-weighted CV, weights of mean 1 cut at {clip:g}): what the nested score would be if the "
    "training rows were drawn like the test set. effective_n: how many equally weighted rows it is worth "
    "(of n); far below n, it is noisy. Reported only, never used to choose anything"
)
BLEND_NOTES = {
    "in_sample": "the blend as submitted (after the rounding decision), scored on the same OOF rows its "
    "calibration, blend method, candidate pruning, weights and rounding were chosen on (a stacker's own "
    "predictions are cross-fitted over the folds): optimistic",
    "nested": "calibration, blend method, pruning, weights and rounding chosen per outer fold on the other "
    "folds' OOF rows only, then applied to the fold's rows: the estimate of the submission's score; "
    "best_single: one candidate picked per outer fold by its score on the other folds, scored the same "
    "way (the baseline the blend must beat); best_single.blend_minus_single: a paired bootstrap of the "
    "nested blend minus it per metric (resampling clips, or whole fold groups), how sure the difference is",
}

LABELS_NOTE = (
    "sample-averaged F1 of the multilabel label strings (no task metric scores them): in_sample_f1 chooses "
    "and scores the thresholds on the same OOF blend (optimistic); nested_f1 re-chooses them per outer fold "
    "on the other folds' blend (f1: as decided, f1_global / f1_per_class: either kind throughout)"
)

METHOD_NAMES = {
    "single": "the best single candidate alone, no blend",
    "grid": "grid search on the weight simplex",
    "greedy": "greedy ensemble selection",
    "stack": "stacker (cross-fitted linear model on the candidates)",
}


def _variant_arrays(npz: dict) -> dict[str, np.ndarray]:
    return {k[len("P__") :]: v for k, v in npz.items() if k.startswith("P__")}


def summarise(
    *,
    candidates: list[str],
    score_paths: list[str],
    decision_paths: list[str],
    candidate_oof_paths: list[str],
    blend_oof_path: str,
    weights_path: str,
    task: TaskSpec,
    nested_path: str | None = None,
    metrics_out: str,
    plots: dict[str, str],
    plot_data: dict[str, str] | None = None,
    shift_path: str | None = None,
    duplicates_path: str | None = None,
    nested_oof_path: str | None = None,
    shift_weights_path: str | None = None,
    fold_info: dict | None = None,
) -> dict:
    primary, greater = metrics.primary(task.kind)
    out: dict = {"task": task.kind, "primary": primary, "greater_is_better": greater, "candidates": {}}
    baseline = None
    for name, score_path, decision_path, oof_path in zip(candidates, score_paths, decision_paths, candidate_oof_paths):
        scores, decisions = read_json(score_path), read_json(decision_path)
        baseline = baseline or scores["baseline"]
        cal = load_npz(oof_path)
        for variant, entry in scores["variants"].items():
            key = f"{name}/{variant}"
            P = _variant_arrays(cal)[variant]
            out["candidates"][key] = {
                "overall": entry["overall"],
                "per_fold": entry["per_fold"],
                "calibration": decisions.get(variant, {}),
                "calibrated_overall": metrics.score(cal["y"], P, task),
            }
    blend = load_npz(blend_oof_path)
    y, folds, P = blend["y"], blend["fold"], blend["P"]
    weights = read_json(weights_path)
    out["blend"] = {
        "in_sample": {
            "overall": metrics.score(y, P, task),
            "per_fold": {int(k): metrics.score(y[folds == k], P[folds == k], task) for k in np.unique(folds)},
            "note": BLEND_NOTES["in_sample"],
        },
        "nested": _nested_entry(nested_path),
        "method": weights.get("method", "grid"),  # weights.json from before blend.method was grid search
        "method_requested": weights.get("requested"),
        "method_scores": weights.get("method_scores", {}),
        "weights": weights["weights"],
        "criterion": weights.get("criterion"),
        "rounding": weights.get("rounding"),
    }
    if "stacker" in weights:
        out["blend"]["stacker"] = weights["stacker"]
    if "per_class" in weights:
        out["blend"]["per_class"] = weights["per_class"]
    if "labels" in weights:
        out["blend"]["labels"] = _labels_entry(weights["labels"], out["blend"]["nested"])
    out["baseline"] = baseline
    if shift_path:  # adversarial validation (audiofold.shift): {backbone, auc, shifted, ...}
        out["shift"] = read_json(shift_path)
        if nested_oof_path and shift_weights_path:
            out["blend"]["shift_weighted"] = shift_weighted_entry(
                nested_oof_path, shift_weights_path, out["shift"], out["blend"]["nested"], task
            )
    if fold_info:  # how the folds were made (task.json): scheme, and the pseudo-groups under cv.auto_groups
        out["folds"] = fold_info
    if duplicates_path:  # identical and near-duplicate clips (audiofold.duplicates): counts and top pairs
        out["duplicates"] = read_json(duplicates_path)
    write_json(metrics_out, out)
    _plot_scores(out, plots["summary"])
    _plot_truth(y, P, task, plots["truth"])
    _plot_weights(weights["weights"], plots["weights"], out["blend"]["method"])
    _plot_calibration(out, plots["calibration"])
    if "table" in plots:
        write_scores_html(out, plots["table"])
    if plot_data:
        write_csv(plot_data["truth"], oof_vs_truth_table(y, P, task))
        write_csv(plot_data["per_class"], per_output_scores(y, P, task))
    return out


def _nested_entry(nested_path: str | None) -> dict | None:
    if nested_path is None:
        return None
    nested = read_json(nested_path)
    return {**nested, "note": nested.get("skipped") or BLEND_NOTES["nested"]}


def shift_weighted_entry(
    nested_oof_path: str, weights_path: str, shift: dict, nested: dict | None, task: TaskSpec
) -> dict:
    """The nested blend scored with the shift step's importance weights (``metrics.weighted_score``),
    overall and per fold, with the effective sample size; ``skipped`` says why where there is none
    (no shift detected, or no nested score)."""
    if not shift.get("shifted"):
        return {
            "overall": None,
            "skipped": f"no train/test shift detected (adversarial AUC {shift.get('auc')} not above "
            f"{shift.get('warn_above')}): weights are all 1, the nested score stands as is",
        }
    if not nested or not nested.get("overall"):
        return {"overall": None, "skipped": "no nested score to weight"}
    oof, weights = load_npz(nested_oof_path), load_npz(weights_path)
    weight_of = dict(zip(weights["ids"].astype(str), weights["weight"]))
    ids = oof["ids"].astype(str)
    missing = [i for i in ids if i not in weight_of]
    if missing:
        raise DataError(
            f"{weights_path}: no weight for OOF id(s) {missing[:5]}; the shift weights and the OOF rows are from "
            "different runs. Rerun the workflow (snakemake --forcerun shift)."
        )
    w = np.asarray([weight_of[i] for i in ids], dtype=np.float64)
    y, folds, P = oof["y"], oof["fold"], oof["P"]
    return {
        "overall": metrics.weighted_score(y, P, task, w),
        "per_fold": {
            int(k): metrics.weighted_score(y[folds == k], P[folds == k], task, w[folds == k]) for k in np.unique(folds)
        },
        "n": int(len(w)),
        "effective_n": round(effective_sample_size(w), 1),
        "max_weight": round(float(w.max()), 4),
        "clip": shift["weights"]["clip"],
        "auc": shift["auc"],
        "note": SHIFT_WEIGHTED_NOTE.format(clip=shift["weights"]["clip"]),
    }


def _labels_entry(labels: dict, nested: dict | None) -> dict:
    """The label-string thresholds: which the submission uses and their F1, in-sample and nested."""
    return {
        "per_class_applied": labels["applied"],
        "mode": labels["mode"],
        "quantile": labels["quantile"],
        "class_quantiles": labels["class_quantiles"],
        "in_sample_f1": labels["in_sample_f1"],
        "cross_validated_f1": labels.get("cross_validated_f1", {}),
        "nested_f1": (nested or {}).get("labels"),
        "note": LABELS_NOTE,
    }


def _blend_rows(summary: dict) -> list[tuple[str, dict]]:
    """(label, {overall, per_fold}) of the in-sample blend and, where computed, the nested one and the
    nested best single candidate."""
    rows = [(IN_SAMPLE, summary["blend"]["in_sample"])]
    nested = summary["blend"].get("nested")
    if nested and nested.get("overall"):
        rows.append((NESTED, nested))
        if nested.get("best_single"):
            rows.append((NESTED_SINGLE, nested["best_single"]))
    weighted = summary["blend"].get("shift_weighted")
    if weighted and weighted.get("overall"):
        rows.append((SHIFT_WEIGHTED, weighted))
    return rows


def scores_table(summary: dict):
    """One row per candidate (backbone/head/variant) and the two blend scores (in-sample as submitted,
    nested): primary OOF score per fold and overall, after calibration, the calibration decision and
    the blend weight."""
    primary = summary["primary"]
    weights = summary["blend"]["weights"]
    rows = []
    for name, entry in list(summary["candidates"].items()) + _blend_rows(summary):
        row = {"candidate": name}
        row.update({f"fold {k}": v[primary] for k, v in entry["per_fold"].items()})
        row[f"OOF {primary}"] = entry["overall"][primary]
        if name not in (IN_SAMPLE, NESTED, NESTED_SINGLE, SHIFT_WEIGHTED):
            cal = entry.get("calibration") or {}
            row[f"calibrated {primary}"] = entry["calibrated_overall"][primary]
            row["calibration"] = (
                f"{cal.get('method', '')} {'kept' if cal.get('applied') else 'not kept'}" if cal else "off"
            )
            row["blend weight"] = weights.get(name, 0.0)
        rows.append(row)
    return pd.DataFrame(rows)


def write_scores_html(summary: dict, path: str) -> None:
    """The scores table as a small standalone HTML page (the report embeds it)."""
    table = scores_table(summary).to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="", border=0)
    better = "higher" if summary["greater_is_better"] else "lower"
    rounding = summary["blend"].get("rounding") or {}
    notes = method_html(summary["blend"])
    notes += "".join(
        f"<li><b>{label}</b>: {summary['blend'][key]['note']}</li>"
        for label, key in ((IN_SAMPLE, "in_sample"), (NESTED, "nested"))
        if summary["blend"].get(key)
    )
    notes += shift_weighted_html(summary["blend"].get("shift_weighted"), summary["primary"])
    notes += comparison_html(summary["blend"], summary["primary"])
    notes += labels_html(summary["blend"])
    if "step" in rounding:
        notes += (
            f"<li>Rounding to the rating step {rounding['step']:g} ({rounding['mode']}): "
            f"{'applied' if rounding['applied'] else 'not applied'}; OOF {rounding['criterion']} rounded "
            f"{rounding['rounded']:.4f}, unrounded {rounding['unrounded']:.4f}</li>"
        )
    html = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>OOF scores</title><style>"
        "body{font-family:sans-serif}table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #ddd;"
        "text-align:right}td:first-child,th:first-child{text-align:left}</style></head><body>"
        f"<h3>Out-of-fold {summary['primary']} ({better} is better), task {summary['task']}</h3>{table}"
        f"<ul>{notes}</ul>{folds_html(summary.get('folds'))}{shift_html(summary.get('shift'))}"
        f"{duplicates_html(summary.get('duplicates'))}</body></html>"
    )
    with atomic_path(path) as tmp:
        tmp.write_text(html, encoding="utf-8")


def method_html(blend: dict) -> str:
    """The list item naming the blend method (and, where `auto` compared them, each method's score)."""
    method = blend.get("method")
    if not method:
        return ""
    line = f"<li><b>Blend method</b>: {METHOD_NAMES.get(method, method)}"
    if blend.get("method_requested") == "auto":
        line += " (chosen by blend.method auto"
        if blend.get("method_scores"):
            scores = ", ".join(f"{m} {v:.4f}" for m, v in blend["method_scores"].items())
            line += f"; cross-validated {blend.get('criterion')} over the folds: {scores}"
        line += ")"
    return line + "</li>"


def comparison_html(blend: dict, primary: str) -> str:
    """The list item saying how sure "the nested blend beats the nested best single" is (empty without one)."""
    single = (blend.get("nested") or {}).get("best_single") or {}
    comparison = single.get("blend_minus_single")
    entry = (comparison or {}).get("metrics", {}).get(primary)
    if not entry or "ci_low" not in entry:
        return ""
    direction = "higher" if metrics.GREATER_IS_BETTER[primary] else "lower"
    return (
        f"<li><b>Nested blend vs nested best single</b>: {primary} difference {entry['difference']:+.4f} "
        f"({direction} is better), 95 % interval {entry['ci_low']:+.4f} to {entry['ci_high']:+.4f} over "
        f"{comparison['n_resamples']} bootstrap resamples of the {comparison['n_units']} {comparison['unit']}; "
        f"the blend is at least as good in {100 * entry['a_at_least_as_good']:.0f} % of them. The interval "
        "covers which rows were scored, not retraining."
        + (f" <b>Warning</b>: {html.escape(single['warning'])}" if single.get("warning") else "")
        + "</li>"
    )


def labels_html(blend: dict) -> str:
    """List items for multilabel blends: per-class weights kept or not, and the label-string F1."""
    out = ""
    per_class = blend.get("per_class")
    if per_class and (per_class.get("applied") or per_class.get("scores")):
        scores = per_class.get("scores") or {}
        line = f"<li><b>Per-class weights</b>: {'kept' if per_class['applied'] else 'not kept'}"
        if scores:
            line += f" (cross-validated {blend.get('criterion')}: global {scores['global']:.4f}, per class {scores['per_class']:.4f})"
        out += line + "</li>"
    labels = blend.get("labels")
    if labels:
        which = "per class" if labels["per_class_applied"] else "global"
        line = (
            f"<li><b>Label-string thresholds</b>: {which}; sample F1 in-sample global "
            f"{labels['in_sample_f1']['global']:.4f}, per class {labels['in_sample_f1']['per_class']:.4f}"
        )
        nested = labels.get("nested_f1")
        if nested:
            line += (
                f"; nested (honest) global {nested['f1_global']:.4f}, per class {nested['f1_per_class']:.4f}, "
                f"as decided {nested['f1']:.4f}"
            )
        out += line + "</li>"
    return out


def shift_weighted_html(weighted: dict | None, primary: str) -> str:
    """The list item on the shift-weighted estimate (empty where none was asked for)."""
    if not weighted:
        return ""
    if not weighted.get("overall"):
        return f"<li><b>{SHIFT_WEIGHTED}</b>: not computed: {html.escape(weighted['skipped'])}</li>"
    return (
        f"<li><b>{SHIFT_WEIGHTED}</b>: {primary} {weighted['overall'][primary]:.4f}, effective sample size "
        f"{weighted['effective_n']:.0f} of {weighted['n']} rows (largest weight {weighted['max_weight']:.2f}); "
        f"{html.escape(weighted['note'])}</li>"
    )


def folds_entry(task_summary: dict) -> dict:
    """How the folds were made, from prepare's task.json: scheme, and the pseudo-groups where there were any."""
    out = {"scheme": task_summary["fold_scheme"]}
    if "auto_groups" in task_summary:
        out["auto_groups"] = task_summary["auto_groups"]
    return out


def folds_html(folds: dict | None) -> str:
    """The line on how the folds were made, and the pseudo-groups where cv.auto_groups clustered the clips."""
    if not folds:
        return ""
    line = f"Folds: {html.escape(folds['scheme'])}."
    auto = folds.get("auto_groups")
    if auto:
        line += f" Pseudo-groups (cv.auto_groups): {html.escape(auto['why'])}."
    return f"<p>{line}</p>"


def shift_html(shift: dict | None) -> str:
    """The adversarial-validation line under the scores table (empty without one)."""
    if not shift or shift.get("auc") is None:
        return ""
    line = (
        f"Train/test shift: a classifier on {shift['backbone']} embeddings tells test clips from training "
        f"clips with ROC AUC {shift['auc']:.3f} (0.5 = indistinguishable)."
    )
    if shift.get("shifted"):
        line += " <b>The test set looks different from training; OOF scores may overstate the submission's.</b>"
    return f"<p>{line}</p>"


def duplicates_html(dups: dict | None) -> str:
    """The duplicate-clips line under the scores table, and the most similar straddling pairs (empty without one)."""
    if not dups:
        return ""
    across = dups["exact_pairs_across_folds"] + dups["near_pairs_across_folds"]
    train_test = dups["exact_pairs_train_test"] + dups["near_pairs_train_test"]
    line = (
        f"Duplicate clips: {dups['exact_sets']} set(s) of identical training clips ({dups['exact_sets_merged']} "
        f"kept in one fold by cv.group_duplicates); pairs across folds: {dups['exact_pairs_across_folds']} "
        f"identical, {dups['near_pairs_across_folds']} near; training clips matching test clips: "
        f"{dups['exact_pairs_train_test']} identical, {dups['near_pairs_train_test']} near (cosine &ge; "
        f"{dups['threshold']} on standardised {dups['backbone']} embeddings)."
    )
    if across:
        line += " <b>Copies straddle folds; OOF scores may overstate.</b>"
    if not dups.get("top_pairs") or not (across or train_test):
        return f"<p>{line}</p>"

    table = pd.DataFrame(dups["top_pairs"]).to_html(index=False, na_rep="", border=0, float_format=lambda v: f"{v:.4f}")
    return f"<p>{line}</p>{table}"


def oof_vs_truth_table(y: np.ndarray, P: np.ndarray, task: TaskSpec):
    """Long table (row, output, truth, predicted) of the blend's OOF predictions, for `dvc plots`.

    Regression: one row per clip and target. Classification: true and argmax class names (a confusion
    plot). Multilabel: one row per clip and class with the 0/1 truth and the predicted score.
    """
    if task.kind == "classification":
        names = np.asarray(task.classes)
        return pd.DataFrame(
            {
                "row": np.arange(len(y)),
                "output": "class",
                "truth": names[np.asarray(y, int)],
                "predicted": names[P.argmax(axis=1)],
            }
        )
    Y = y.reshape(len(y), -1)
    n, m = P.shape
    return pd.DataFrame(
        {
            "row": np.repeat(np.arange(n), m),
            "output": np.tile(task.output_names, n),
            "truth": Y.ravel(),
            "predicted": P.ravel(),
        }
    )


def per_output_scores(y: np.ndarray, P: np.ndarray, task: TaskSpec):
    """One score per target/class of the blend's OOF predictions (metric named in the table), for `dvc plots`."""
    if task.is_regression:
        metric, values = "pearson", metrics.pearson_per_target(y.reshape(len(y), -1), P)
    elif task.kind == "classification":
        metric = "f1"
        values = f1_score(y, P.argmax(axis=1), labels=range(len(task.classes)), average=None, zero_division=0)
    else:
        metric, values = "lwlrap", metrics.lwlrap_per_class(y, P)[1]
    return pd.DataFrame(
        {"output": task.output_names, "metric": metric, "score": np.round(np.asarray(values, float), 6)}
    )


def _figure():
    # deferred: matplotlib loads only when a plot is drawn
    import matplotlib

    matplotlib.use("Agg")
    # deferred: matplotlib loads only when a plot is drawn
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _figure().close(fig)


def _plot_scores(summary: dict, path: str) -> None:
    plt = _figure()
    primary = summary["primary"]
    rows = [
        (k, v["overall"][primary], [f[primary] for f in v["per_fold"].values()], v["calibrated_overall"][primary])
        for k, v in summary["candidates"].items()
    ]
    n_candidates = len(rows)
    rows += [
        (label, entry["overall"][primary], [f[primary] for f in entry["per_fold"].values()], None)
        for label, entry in _blend_rows(summary)
    ]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.8))
    pos = np.arange(len(rows))
    colors = ["tab:blue"] * n_candidates + ["tab:orange", "tab:red", "tab:gray", "tab:purple"][
        : len(rows) - n_candidates
    ]
    ax.barh(pos, [r[1] for r in rows], color=colors, alpha=0.7)
    for i, (_, _, per_fold, calibrated) in enumerate(rows):
        ax.scatter(per_fold, [i] * len(per_fold), color="black", s=10, zorder=3, label="per fold" if i == 0 else None)
        if calibrated is not None:
            ax.scatter(
                [calibrated],
                [i],
                marker="D",
                color="tab:green",
                s=30,
                zorder=4,
                label="after calibration (what the blend uses)" if i == 0 else None,
            )
    if summary.get("baseline"):
        ax.axvline(summary["baseline"][primary], color="gray", ls="--", label="trivial predictor")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=8, frameon=False)
    ax.set_yticks(pos, [r[0] for r in rows])
    ax.set_xlabel(f"OOF {primary} ({'higher' if summary['greater_is_better'] else 'lower'} is better)")
    ax.set_title("Out-of-fold scores")
    _save(fig, path)


def _plot_truth(y: np.ndarray, P: np.ndarray, task: TaskSpec, path: str) -> None:
    plt = _figure()
    if task.is_regression:
        n = P.shape[1]
        fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4), squeeze=False)
        for j, ax in enumerate(axes[0]):
            ax.scatter(y[:, j], P[:, j], s=8, alpha=0.5)
            lo, hi = float(min(y[:, j].min(), P[:, j].min())), float(max(y[:, j].max(), P[:, j].max()))
            ax.plot([lo, hi], [lo, hi], color="gray", ls="--")
            ax.set_xlabel(f"true {task.output_names[j]}")
            ax.set_ylabel("OOF prediction")
            r = metrics.METRICS["pearson"](y[:, j : j + 1], P[:, j : j + 1], task)
            ax.set_title(f"{task.output_names[j]}: Pearson r = {r:.3f}")
    elif task.kind == "classification":
        cm = confusion_matrix(y, P.argmax(axis=1), labels=range(len(task.classes)))
        size = max(4, 0.5 * len(task.classes) + 2)
        fig, ax = plt.subplots(figsize=(size, size))
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(task.classes)), task.classes, rotation=45, ha="right")
        ax.set_yticks(range(len(task.classes)), task.classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title("Confusion matrix (blend, OOF)")
    else:
        score, per_class, _ = metrics.lwlrap_per_class(y, P)
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(task.classes) + 1.5))
        ax.barh(range(len(per_class)), per_class)
        ax.set_yticks(range(len(per_class)), task.classes)
        ax.set_xlim(0, 1)
        ax.set_xlabel("per-class LWLRAP")
        ax.set_title(f"Per-class LWLRAP (blend, OOF): overall {score:.3f}")
    _save(fig, path)


def _plot_weights(weights: dict[str, float], path: str, method: str = "grid") -> None:
    plt = _figure()
    names = list(weights)
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(names) + 1.5))
    ax.barh(range(len(names)), [weights[n] for n in names], color="tab:orange")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the stacker's absolute coefficients" if method == "stack" else "blend weight")
    ax.set_title(f"Blend weights: {METHOD_NAMES.get(method, method)}")
    _save(fig, path)


def _plot_calibration(summary: dict, path: str) -> None:
    plt = _figure()
    names = [k for k, v in summary["candidates"].items() if v.get("calibration")]
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(1, len(names)) + 1.5))
    if names:
        before = [summary["candidates"][k]["calibration"].get("before", np.nan) for k in names]
        after = [summary["candidates"][k]["calibration"].get("after", np.nan) for k in names]
        pos = np.arange(len(names))
        ax.barh(pos - 0.2, before, height=0.4, label="before")
        ax.barh(pos + 0.2, after, height=0.4, label="after")
        labels = [
            f"{k} ({'kept' if summary['candidates'][k]['calibration'].get('applied') else 'not kept'})" for k in names
        ]
        ax.set_yticks(pos, labels)
        first = summary["candidates"][names[0]]["calibration"]
        better = "higher" if first.get("greater_is_better") else "lower"
        ax.set_xlabel(f"OOF {first.get('criterion', 'criterion')} ({better} is better)")
        ax.legend()
    ax.set_title("Calibration")
    _save(fig, path)
