"""Multilabel per-class blend weights (audiofold.ensemble.classwise via blend) and per-class label thresholds (submit)."""

import time

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from audiofold import metrics
from audiofold.ensemble.blend import blend_files, fit_blend, fit_method, predict_blend
from audiofold.ensemble.blend_nested import nested_blend
from audiofold.ensemble.classwise import ColumnScorer, class_weights
from audiofold.ensemble.options import BlendOptions
from audiofold.io import read_json, save_npz, write_json
from audiofold.postprocess import (
    decide_label_thresholds,
    label_mask,
    label_thresholds,
    samples_f1,
    tune_class_quantiles,
    tune_label_quantile,
)
from audiofold.submit import write_submission
from audiofold.tasks import TaskSpec

ML = TaskSpec("multilabel", "id", ["labels"], classes=["a", "b", "c", "d"], label_sep=",")


def specialists(n=1600, seed=0):
    """Candidate A hears classes a, b (noise on c, d); candidate B the other way round."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 4)) < 0.25).astype(np.float32)
    signal = y + rng.normal(0, 0.7, size=y.shape)
    noise = rng.normal(0.25, 0.8, size=y.shape)
    A = np.where([True, True, False, False], signal, noise)
    signal_b = y + rng.normal(0, 0.7, size=y.shape)
    B = np.where([False, False, True, True], signal_b, rng.normal(0.25, 0.8, size=y.shape))
    return y, {"A": A, "B": B}


def ranks(P):
    return ((rankdata(P, axis=None) - 1) / (P.size - 1)).reshape(P.shape)


# ---- per-class weights ------------------------------------------------------------------------
def test_column_scorer_is_lwlrap_with_one_column_replaced_ties_included():
    rng = np.random.default_rng(1)
    y = (rng.random((300, 6)) < 0.3).astype(float)
    G = np.round(rng.random((300, 6)), 1)  # coarse values: many ties
    V = np.round(rng.random((3, 300)), 1)
    scorer = ColumnScorer(y, G)
    for c in range(6):
        expected = []
        for v in V:
            H = G.copy()
            H[:, c] = v
            expected.append(metrics.lwlrap(y, H))
        np.testing.assert_allclose(scorer.totals(c, V) / scorer.n_positive_cells, expected, atol=1e-12)


def test_per_class_weights_follow_each_class_specialist_and_beat_global_weights_on_held_out_rows():
    y, candidates = specialists()
    train, held = np.arange(len(y)) < 1000, np.arange(len(y)) >= 1000
    fit_rows = {name: P[train] for name, P in candidates.items()}
    held_rows = {name: P[held] for name, P in candidates.items()}
    per_class = fit_method("greedy", fit_rows, y[train], ML, per_class=True)
    global_ = fit_method("greedy", fit_rows, y[train], ML)

    W = per_class["class_weights"]
    assert W["A"][0] > 0.8 and W["A"][1] > 0.8  # a, b from A
    assert W["B"][2] > 0.8 and W["B"][3] > 0.8  # c, d from B
    assert per_class["global_weights"] == global_["weights"]
    assert 0.9 < min(per_class["class_share"]) < 1  # ~250 positives each, shrinkage 10: mostly their own

    held_per_class = metrics.lwlrap(y[held], predict_blend(per_class, held_rows, ML))
    held_global = metrics.lwlrap(y[held], predict_blend(global_, held_rows, ML))
    assert held_per_class > held_global + 0.03, (held_per_class, held_global)


def test_rare_classes_keep_the_global_weights_and_shrinkage_pulls_towards_them():
    y, candidates = specialists(n=600)
    y[:, 3] = 0
    y[:5, 3] = 1  # 5 positives: below min_positives
    stack = np.stack([ranks(candidates["A"]), ranks(candidates["B"])])
    global_weights = np.array([0.5, 0.5])
    W, share = class_weights(stack, y, global_weights, min_positives=10, shrinkage=0.0)
    np.testing.assert_array_equal(W[3], global_weights)
    assert share[3] == 0 and np.all(share[:3] == 1)
    heavy, _ = class_weights(stack, y, global_weights, min_positives=10, shrinkage=1e6)
    np.testing.assert_allclose(heavy, np.tile(global_weights, (4, 1)), atol=1e-3)


def test_auto_keeps_per_class_weights_where_they_win_on_cross_fitted_rows():
    y, candidates = specialists()
    folds = np.arange(len(y)) % 4
    result, oof = fit_blend(candidates, y, folds, ML, BlendOptions(method="greedy", per_class="auto"))
    decision = result["per_class"]
    assert decision["applied"] and decision["requested"] == "auto"
    assert decision["scores"]["per_class"] > decision["scores"]["global"] + 0.02
    assert "class_weights" in result
    assert result["score"] == pytest.approx(metrics.lwlrap(y, oof))


def test_auto_falls_back_to_global_weights_where_per_class_does_not_win():
    """Six equally good all-rounders on rare classes, no shrinkage: a per-class search only fits
    noise, so the cross-fitted comparison keeps the global weights."""
    rng = np.random.default_rng(0)
    y = (rng.random((800, 12)) < 0.02).astype(np.float32)
    candidates = {name: y + rng.normal(0, 0.9, size=y.shape) for name in "ABCDEF"}
    task = TaskSpec("multilabel", "id", ["labels"], classes=[f"c{c}" for c in range(12)], label_sep=",")
    folds = np.arange(len(y)) % 4
    options = {"method": "greedy", "per_class_min_positives": 5, "per_class_shrinkage": 0}
    result, oof = fit_blend(candidates, y, folds, task, BlendOptions(per_class="auto", **options))
    decision = result["per_class"]
    assert not decision["applied"] and decision["scores"]["per_class"] < decision["scores"]["global"] - 0.01
    assert "class_weights" not in result and decision["reason"]
    plain, plain_oof = fit_blend(candidates, y, folds, task, BlendOptions(per_class=False, **options))
    np.testing.assert_array_equal(oof, plain_oof)
    assert result["weights"] == plain["weights"]
    forced, _ = fit_blend(candidates, y, folds, task, BlendOptions(per_class=True, **options))
    assert forced["per_class"]["applied"] and forced["score"] > result["score"]  # in-sample it looks better


def test_single_label_and_regression_results_are_unchanged_by_per_class():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(200, 1))
    candidates = {f"m{i}": y + rng.normal(0, 1 + 0.1 * i, size=y.shape) for i in range(3)}
    reg = TaskSpec("regression", "id", ["score"])
    folds = np.arange(200) % 4
    with_, oof_with = fit_blend(candidates, y, folds, reg, BlendOptions(method="greedy", per_class=True))
    without, oof_without = fit_blend(candidates, y, folds, reg, BlendOptions(method="greedy", per_class=False))
    assert "per_class" not in with_ and with_ == without
    np.testing.assert_array_equal(oof_with, oof_without)


def test_nested_score_re_decides_per_class_weights_per_outer_fold_and_reports_the_gain():
    y, candidates = specialists(n=1200)
    folds = np.arange(len(y)) % 4
    P_auto, chosen = nested_blend(
        candidates, y, folds, ML, BlendOptions(method="greedy", per_class="auto"), calibrate=False
    )
    P_global, _ = nested_blend(
        candidates, y, folds, ML, BlendOptions(method="greedy", per_class=False), calibrate=False
    )
    assert all(fold["per_class"]["applied"] for fold in chosen)
    assert metrics.lwlrap(y, P_auto) > metrics.lwlrap(y, P_global) + 0.03


def test_nested_fold_k_rows_with_per_class_weights_do_not_depend_on_fold_k_targets():
    y, candidates = specialists(n=800)
    folds = np.arange(len(y)) % 3
    P, _ = nested_blend(candidates, y, folds, ML, BlendOptions(method="greedy", per_class=True), calibrate=False)
    changed = y.copy()
    changed[folds == 1] = 1 - changed[folds == 1]
    P2, _ = nested_blend(candidates, changed, folds, ML, BlendOptions(method="greedy", per_class=True), calibrate=False)
    np.testing.assert_array_equal(P[folds == 1], P2[folds == 1])
    assert not np.array_equal(P[folds == 0], P2[folds == 0])


def test_80_classes_by_24_candidates_blend_in_seconds():
    rng = np.random.default_rng(0)
    n, n_classes = 800, 80
    y = (rng.random((n, n_classes)) < 0.03).astype(np.float32)
    candidates = {f"m{i:02d}": y + rng.normal(0, 1 + 0.05 * i, size=y.shape) for i in range(24)}
    task = TaskSpec("multilabel", "id", ["labels"], classes=[f"c{c}" for c in range(n_classes)], label_sep=",")
    started = time.perf_counter()
    result = fit_method("greedy", candidates, y, task, per_class=True)
    elapsed = time.perf_counter() - started
    assert len(next(iter(result["class_weights"].values()))) == n_classes
    assert elapsed < 20, elapsed  # ~1 s alone; a loaded shared core is slower


# ---- per-class label thresholds ---------------------------------------------------------------
def threshold_problem(n=900, seed=0, true=(0.2, 0.6)):
    """Class a is a label wherever its score >= 0.2, class b wherever >= 0.6; class c is every row's
    top label (so the always-kept top label is right)."""
    rng = np.random.default_rng(seed)
    P = np.column_stack([rng.uniform(0, 0.8, n), rng.uniform(0, 0.8, n), rng.uniform(0.9, 1.0, n)])
    Y = np.column_stack([P[:, 0] >= true[0], P[:, 1] >= true[1], np.ones(n, bool)])
    return P, Y


def test_per_class_thresholds_recover_different_true_thresholds():
    P, Y = threshold_problem()
    quantile = tune_label_quantile(P, Y)
    class_quantiles = tune_class_quantiles(P, Y, quantile, min_positives=10)
    thresholds = np.quantile(P, class_quantiles)
    assert thresholds[0] == pytest.approx(0.2, abs=0.02) and thresholds[1] == pytest.approx(0.6, abs=0.02)
    assert samples_f1(label_mask(P, thresholds), Y) > 0.99
    assert samples_f1(label_mask(P, np.quantile(P, quantile)), Y) < 0.95  # no single threshold fits both


def test_classes_with_too_few_positives_keep_the_global_threshold():
    P, Y = threshold_problem()
    Y[:, 1] = False
    Y[np.argsort(-P[:, 1])[:4], 1] = True  # 4 positives, the top-scored ones: their own threshold would be high
    quantile = tune_label_quantile(P, Y)
    assert tune_class_quantiles(P, Y, quantile, min_positives=10)[1] == quantile
    assert tune_class_quantiles(P, Y, quantile, min_positives=1)[1] > quantile


def test_auto_thresholds_per_class_where_cross_fitted_f1_is_better_and_global_where_not():
    P, Y = threshold_problem()
    folds = np.arange(len(P)) % 3
    decision = decide_label_thresholds(P, Y, folds, "auto", min_positives=10)
    assert decision["applied"]
    assert decision["cross_validated_f1"]["per_class"] > decision["cross_validated_f1"]["global"]
    assert decision["in_sample_f1"]["per_class"] > decision["in_sample_f1"]["global"]
    assert label_thresholds(P, decision).shape == (3,)
    # exchangeable rare classes: per-class thresholds only fit noise; in-sample they look better,
    # cross-fitted they are worse, and auto keeps the global one
    rng = np.random.default_rng(0)
    Y_same = rng.random((300, 12)) < 0.04
    Y_same[np.arange(300), rng.integers(0, 12, 300)] = True
    P_same = Y_same + rng.normal(0, 0.6, size=Y_same.shape)
    same = decide_label_thresholds(P_same, Y_same, np.arange(300) % 3, "auto", min_positives=3)
    assert same["in_sample_f1"]["per_class"] > same["in_sample_f1"]["global"]
    assert not same["applied"] and same["cross_validated_f1"]["per_class"] < same["cross_validated_f1"]["global"]
    assert isinstance(label_thresholds(P_same, same), float)
    assert not decide_label_thresholds(P, Y, folds, False, min_positives=10)["applied"]


def test_submit_writes_label_strings_with_the_blend_s_per_class_thresholds(tmp_path):
    P, Y = threshold_problem(n=1200)
    oof, test = P[:900], P[900:]
    folds = np.arange(900) % 3
    decision = decide_label_thresholds(oof, Y[:900], folds, True, min_positives=10)
    task = TaskSpec("multilabel", "id", ["labels"], classes=["a", "b", "c"], label_sep=" ")
    save_npz(tmp_path / "test.npz", ids=np.array([f"t{i}" for i in range(300)]), P=test.astype(np.float32))
    write_json(tmp_path / "weights.json", {"labels": decision, "rounding": {"applied": False}})
    sub = write_submission(
        tmp_path / "test.npz",
        task,
        None,
        tmp_path / "sub.csv",
        threshold="auto",
        blend_decisions_path=tmp_path / "weights.json",
    )
    written = sub["labels"].str.split(" ").map(set)
    truth = [{name for name, on in zip("abc", row) if on} for row in Y[900:]]
    assert np.mean([w == t for w, t in zip(written, truth)]) > 0.97
    # the global threshold writes something else: the per-class ones were used
    write_json(tmp_path / "weights.json", {"labels": {**decision, "applied": False}})
    global_sub = write_submission(
        tmp_path / "test.npz",
        task,
        None,
        tmp_path / "sub2.csv",
        threshold="auto",
        blend_decisions_path=tmp_path / "weights.json",
    )
    assert np.mean([set(g.split(" ")) == t for g, t in zip(global_sub["labels"], truth)]) < 0.9


def test_blend_files_record_per_class_decisions_and_nested_reports_the_label_f1(tmp_path):
    from audiofold.ensemble.blend_nested import nested_files

    y, candidates = specialists(n=900)
    folds = np.arange(len(y)) % 3
    paths = {}
    for name, P in candidates.items():
        path = tmp_path / f"{name}.npz"
        save_npz(path, ids=np.arange(len(y)).astype(str), fold=folds, y=y, P__raw=P)
        paths[name] = str(path)
    result = blend_files(
        paths,
        paths,
        ML,
        tmp_path / "oof.npz",
        tmp_path / "test.npz",
        tmp_path / "w.json",
        BlendOptions(method="greedy"),
    )
    saved = read_json(tmp_path / "w.json")
    assert saved["per_class"]["applied"] and saved["per_class"]["requested"] == "auto"
    assert set(saved["labels"]) >= {"applied", "quantile", "class_quantiles", "in_sample_f1", "cross_validated_f1"}
    assert len(saved["labels"]["class_quantiles"]) == 4 and result["labels"] == saved["labels"]
    summary = nested_files(
        paths, ML, tmp_path / "n.npz", tmp_path / "n.json", BlendOptions(method="greedy"), calibrate=False
    )
    assert set(summary["labels"]) == {"f1", "f1_global", "f1_per_class"}
    assert all("labels" in fold and "per_class" in fold for fold in summary["folds"])
    assert pd.Series(summary["labels"]).between(0, 1).all()


def test_the_report_keeps_in_sample_and_nested_label_f1_apart():
    from audiofold.report import _labels_entry, labels_html

    P, Y = threshold_problem()
    labels = decide_label_thresholds(P, Y, np.arange(len(P)) % 3, "auto", min_positives=10)
    nested = {"labels": {"f1": 0.91, "f1_global": 0.85, "f1_per_class": 0.91}}
    entry = _labels_entry(labels, nested)
    assert entry["in_sample_f1"] == labels["in_sample_f1"] and entry["nested_f1"] == nested["labels"]
    assert entry["per_class_applied"] and "in_sample_f1" in entry["note"] and "nested_f1" in entry["note"]
    blend = {
        "criterion": "lwlrap",
        "per_class": {"applied": True, "scores": {"global": 0.8, "per_class": 0.85}},
        "labels": entry,
    }
    html = labels_html(blend)
    assert "Per-class weights</b>: kept (cross-validated lwlrap: global 0.8000, per class 0.8500)" in html
    assert "Label-string thresholds</b>: per class" in html
    assert "nested (honest) global 0.8500, per class 0.9100, as decided 0.9100" in html
    assert "nested" not in labels_html({"labels": _labels_entry(labels, None)})  # nested skipped: not claimed
