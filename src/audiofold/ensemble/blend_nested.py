"""Honest score of the whole ensemble step: everything chosen on OOF is chosen again per outer fold.

The blend's own OOF score is in-sample: calibration keep/drop, the blend method, candidate
pruning, blend weights and the rounding decision are all chosen on the very OOF rows they are
then scored on (on the demo that flatters RMSE by 0.5-2.5 %, and pure-noise candidates still win
weight). Here, for each outer fold k, the same code (``calibrate.calibrate_candidate``,
``blend.fit_blend`` with its method choice, ``postprocess.decide_rounding``) makes those choices from
the OOF rows of the other folds only (``auto`` compares the methods cross-fitted over those
folds), and the choices are applied to fold k's rows as they are applied to the test set:
calibrated by the mean of the inner folds' calibrators, blended with the inner weights or
stacker (multilabel: ranks over fold k's own block, as the test blend ranks the test block),
rounded or not. The concatenated
fold-k predictions form a nested OOF prediction whose score estimates what the submission scores.
Multilabel: the per-class weights decision (``blend.per_class``) is re-made per outer fold too,
and so are the label-string thresholds (global and per class, ``postprocess.decide_label_thresholds``
on the inner blend, applied through fold k's own score quantiles); ``labels`` reports the nested
sample-averaged F1 of the label strings (no metric of the task scores them, so they are reported
beside it, not in it).

Not re-chosen: each head's own fitting, which is already out of fold.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .. import metrics
from ..errors import DataError
from ..io import load_npz, save_npz, write_json
from ..postprocess import (
    decide_label_thresholds,
    decide_rounding,
    finalize_predictions,
    label_mask,
    label_thresholds,
    samples_f1,
)
from ..tasks import TaskSpec
from .blend import fit_blend, load_candidates, predict_blend
from .bootstrap import paired_bootstrap
from .calibrate import calibrate_candidate
from .options import BlendOptions

log = logging.getLogger(__name__)

# Warn when the nested blend is at least as good as the nested best single in fewer resamples than this.
SINGLE_WINS_SHARE = 0.1

# Calibration, and the blend methods that cross-fit (auto, stack), work on the folds inside the
# outer training part, which needs two folds there.
MIN_FOLDS_WITH_CALIBRATION = 3


def min_folds(calibrate: bool, method: str, per_class_auto: bool = False) -> int:
    """Folds the nested score needs: 3 where something is cross-fitted inside the outer training part
    (``per_class_auto``: a multilabel blend with ``blend.per_class: auto``)."""
    return MIN_FOLDS_WITH_CALIBRATION if calibrate or method in ("auto", "stack") or per_class_auto else 2


def _why(calibrate: bool, method: str) -> str:
    if calibrate:
        return " (calibration is cross-fitted inside the other folds)."
    if method in ("auto", "stack"):
        return f" (blend.method {method} is cross-fitted inside the other folds)."
    return " (blend.per_class auto is cross-fitted inside the other folds)."


def nested_blend(
    candidates: dict[str, np.ndarray],
    y: np.ndarray,
    folds: np.ndarray,
    task: TaskSpec,
    options: BlendOptions = BlendOptions(),
    *,
    calibrate: bool = True,
    label_masks: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Nested OOF prediction of the calibrate -> blend -> round chain and what each outer fold chose,
    every choice made as the blend step makes it under ``options``.

    ``candidates``: uncalibrated OOF predictions (name -> (n, D)), rows aligned with ``y`` and
    ``folds``. Fold k's rows of the result depend on fold k's targets through nothing.
    Returns (P (n, D) float64, one dict per outer fold: fold, method (the one chosen), method_scores
    (``fit_blend``'s cross-validated comparison, empty without one), weights (non-zero; for the
    stacker each candidate's coefficient share), calibrated (candidates whose calibration was kept),
    rounding (``decide_rounding``), inner_score; multilabel also per_class (applied, scores) and
    labels (per-class thresholds applied, their cross-validated F1 on the inner folds)).
    ``label_masks`` (multilabel): a dict filled with the nested label strings written by the
    thresholds as decided (``as_decided``), by the global and by the per-class ones (boolean (n, C)).
    """
    folds = np.asarray(folds)
    fold_ids = np.unique(folds)
    multilabel = task.kind == "multilabel"
    minimum = min_folds(calibrate, options.method, multilabel and options.per_class == "auto")
    if len(fold_ids) < minimum:
        raise DataError(
            f"nested blend score: {len(fold_ids)} fold(s); it needs cv.n_folds >= {minimum}"
            + _why(calibrate, options.method)
        )
    first = next(iter(candidates.values()))
    nested = np.full((len(first), np.asarray(first).reshape(len(first), -1).shape[1]), np.nan)
    if multilabel and label_masks is not None:
        label_masks.update({key: np.zeros(nested.shape, bool) for key in ("as_decided", "global", "per_class")})
    chosen = []
    for k in fold_ids:
        inner, outer = folds != k, folds == k
        inner_cands, outer_cands, calibrated = {}, {}, []
        for name, P in candidates.items():
            if calibrate:
                inner_cands[name], outer_cands[name], decision = calibrate_candidate(
                    P[inner], y[inner], folds[inner], P[outer], task
                )
                if decision["applied"]:
                    calibrated.append(name)
            else:
                inner_cands[name], outer_cands[name] = P[inner], P[outer]
        fitted, inner_blend = fit_blend(inner_cands, y[inner], folds[inner], task, options)
        rounding = decide_rounding(y[inner], inner_blend, task, options.round_mode)
        nested[outer] = finalize_predictions(
            predict_blend(fitted, outer_cands, task), task, round_to_step=rounding["applied"]
        )
        record = {
            "fold": int(k),
            "method": fitted["method"],
            "method_scores": fitted["method_scores"],
            "weights": {name: w for name, w in fitted["weights"].items() if w > 0},
            "calibrated": calibrated,
            "rounding": rounding,
            "inner_score": fitted["score"],
        }
        if multilabel:
            record["per_class"] = {key: fitted["per_class"][key] for key in ("applied", "scores")}
            labels = decide_label_thresholds(
                finalize_predictions(inner_blend, task),
                y[inner],
                folds[inner],
                options.per_class_threshold,
                min_positives=options.threshold_min_positives,
            )
            record["labels"] = {key: labels[key] for key in ("applied", "quantile", "cross_validated_f1")}
            if label_masks is not None:
                block = nested[outer]
                label_masks["as_decided"][outer] = label_mask(block, label_thresholds(block, labels))
                label_masks["global"][outer] = label_mask(block, label_thresholds(block, {**labels, "applied": False}))
                label_masks["per_class"][outer] = label_mask(
                    block, label_thresholds(block, {**labels, "applied": True})
                )
        chosen.append(record)
    return nested, chosen


def nested_best_single(
    candidates: dict[str, np.ndarray], y: np.ndarray, folds: np.ndarray, task: TaskSpec
) -> tuple[np.ndarray, list[str]]:
    """What picking one candidate scores, judged as honestly as the nested blend: per outer fold k,
    the candidate with the best primary metric on the other folds' OOF rows predicts fold k's rows
    (made valid for the task, unrounded). The best candidate's own OOF score is no fair baseline for
    the nested blend: picked as the best of many on the rows it is scored on, it flatters.
    Returns (P (n, D) float64, the name chosen per outer fold)."""
    primary, greater = metrics.primary(task.kind)
    sign = 1.0 if greater else -1.0
    first = np.asarray(next(iter(candidates.values())))
    P = np.full((len(first), first.reshape(len(first), -1).shape[1]), np.nan)
    chosen = []
    for k in np.unique(folds):
        inner, outer = folds != k, folds == k
        # names break ties, so dict order never matters
        best = max(
            sorted(candidates),
            key=lambda name: (
                sign
                * metrics.METRICS[primary](y[inner], finalize_predictions(candidates[name][inner], task, False), task)
            ),
        )
        P[outer] = finalize_predictions(np.asarray(candidates[best])[outer], task, round_to_step=False).reshape(
            int(outer.sum()), -1
        )
        chosen.append(best)
    return P, chosen


def single_beats_blend(comparison: dict, task: TaskSpec, chosen: list[str]) -> str | None:
    """The warning to give when the nested best single beats the nested blend on the primary metric
    in nearly every bootstrap resample (``paired_bootstrap`` of blend minus single), else None."""
    primary = metrics.primary(task.kind)[0]
    entry = comparison.get("metrics", {}).get(primary) or {}
    share = entry.get("a_at_least_as_good")
    if share is None or share >= SINGLE_WINS_SHARE:
        return None
    warning = (
        f"the nested best single ({', '.join(sorted(set(chosen)))}) beats the nested blend on {primary} in "
        f"{100 * (1 - share):.0f} % of {comparison['n_resamples']} bootstrap resamples (blend minus single "
        f"{entry['difference']:+.4f})."
    )
    log_loss = comparison["metrics"].get("log_loss", {}).get("difference")
    if task.kind == "classification" and log_loss is not None:  # the blend's criterion is not the primary
        warning += f" The blend is fitted on log loss, where blend minus single is {log_loss:+.4f}."
    return warning + (
        " blend.method: single submits the candidate with the best OOF score alone, and this nested "
        "score then judges that choice too."
    )


def _fold_groups(targets_path: str | None, ids: np.ndarray) -> np.ndarray | None:
    """The fold group of each OOF row (``prepare``'s targets.npz), or None where folds had no groups."""
    if targets_path is None:
        return None
    targets = load_npz(targets_path)
    if "group" not in targets:
        return None
    group_of = dict(zip(targets["ids"].astype(str), targets["group"]))
    missing = [i for i in ids.astype(str) if i not in group_of]
    if missing:
        raise DataError(
            f"{targets_path}: no fold group for OOF id(s) {missing[:5]}; the OOF files and the targets are "
            "from different runs. Rerun the workflow (snakemake --forcerun prepare)."
        )
    return np.asarray([group_of[i] for i in ids.astype(str)])


def nested_files(
    oof_paths: dict[str, str],
    task: TaskSpec,
    oof_out,
    summary_out,
    options: BlendOptions = BlendOptions(),
    *,
    calibrate: bool = True,
    targets_path: str | None = None,
    seed: int = 0,
) -> dict:
    """Nested blend (``nested_blend`` under ``options``) of the uncalibrated candidate files; write its
    OOF (ids, fold, y, P) and a summary.

    Summary: overall and per_fold (the task's metrics of the nested OOF prediction), folds
    (what each outer fold chose, ``nested_blend``) and best_single (``nested_best_single``: overall,
    per_fold, the candidate chosen per outer fold, and ``blend_minus_single``: ``bootstrap.paired_bootstrap``
    of the nested blend against it, resampling whole fold groups where ``targets_path``
    (``prepare``'s targets.npz) has them, seeded by ``seed``; and ``warning`` where the single
    consistently wins, ``single_beats_blend``, also logged), the baseline the nested blend must beat; multilabel also ``labels``: the nested
    sample-averaged F1 of the label strings (``f1``: thresholds as decided per fold; ``f1_global``,
    ``f1_per_class``: either kind throughout). With too few folds to nest, overall is None and
    ``skipped`` says why (P is then NaN)."""
    candidates, _, oof, _ = load_candidates(oof_paths)
    y, folds = oof["y"], oof["fold"]
    n_folds = len(np.unique(folds))
    minimum = min_folds(calibrate, options.method, task.kind == "multilabel" and options.per_class == "auto")
    if n_folds < minimum:  # too few folds to nest: say so instead of failing the run
        reason = f"not computed: {n_folds} folds; the nested score needs cv.n_folds >= {minimum}"
        save_npz(
            oof_out,
            ids=oof["ids"],
            fold=folds,
            y=y,
            P=np.full(np.shape(next(iter(candidates.values()))), np.nan, dtype=np.float32),
        )
        summary = {"overall": None, "per_fold": {}, "folds": [], "skipped": reason}
        write_json(summary_out, summary)
        return summary
    masks: dict[str, np.ndarray] = {}
    P, chosen = nested_blend(candidates, y, folds, task, options, calibrate=calibrate, label_masks=masks)

    def scored(pred: np.ndarray) -> dict:
        return {
            "overall": metrics.score(y, pred, task),
            "per_fold": {int(k): metrics.score(y[folds == k], pred[folds == k], task) for k in np.unique(folds)},
        }

    single, single_chosen = nested_best_single(candidates, y, folds, task)
    row_groups = _fold_groups(targets_path, oof["ids"])
    comparison = paired_bootstrap(y, P, single, task, groups=row_groups, seed=seed)
    summary = {
        **scored(P),
        "folds": chosen,
        "best_single": {**scored(single), "chosen": single_chosen, "blend_minus_single": comparison},
    }
    if warning := single_beats_blend(comparison, task, single_chosen):
        log.warning(warning)
        summary["best_single"]["warning"] = warning
    if masks:
        summary["labels"] = {
            "f1": samples_f1(masks["as_decided"], y),
            "f1_global": samples_f1(masks["global"], y),
            "f1_per_class": samples_f1(masks["per_class"], y),
        }
    save_npz(oof_out, ids=oof["ids"], fold=folds, y=y, P=P.astype(np.float32))
    write_json(summary_out, summary)
    return summary
