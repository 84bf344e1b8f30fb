"""Blend methods beyond the grid: greedy ensemble selection, the cross-fitted stacker, and `auto`."""

import time

import numpy as np
import pytest
from scipy.special import expit, softmax

from audiofold import metrics
from audiofold.ensemble.blend import (
    apply_weights,
    blend_files,
    cross_fit,
    fit_blend,
    greedy_weights,
    predict_blend,
    search_weights,
    single_weights,
    stack_weights,
)
from audiofold.ensemble.blend_nested import nested_blend
from audiofold.ensemble.options import BlendOptions
from audiofold.ensemble.stack import predict_stacker
from audiofold.errors import ConfigError, DataError
from audiofold.io import load_npz, read_json, save_npz
from audiofold.tasks import TaskSpec

REG = TaskSpec("regression", "id", ["score"])
MT = TaskSpec("multitarget", "id", ["valence", "arousal"])
CLS = TaskSpec("classification", "id", ["label"], classes=["a", "b", "c"])
ML = TaskSpec("multilabel", "id", ["labels"], classes=["a", "b", "c", "d", "e"], label_sep=",")


def noisy_regression(n_candidates, seed=0, n=200, targets=1):
    """Candidates = y plus independent noise of growing spread: m0 is the best alone."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, targets))
    return y, {f"m{i:02d}": y + rng.normal(0, 1 + 0.1 * i, size=y.shape) for i in range(n_candidates)}


def informative_and_noise(kind, seed, n=2000, n_noise=8):
    """One candidate that is the truth's own signal (the best any model can do) and pure-noise ones
    with the same spread: weight on the noise is fitted to chance."""
    rng = np.random.default_rng(seed)
    if kind == "regression":
        signal = rng.normal(0, 1, size=(n, 1))
        y = signal + rng.normal(0, 0.5, size=(n, 1))
        return y, {"real": signal, **{f"noise{i}": rng.normal(0, 1, size=(n, 1)) for i in range(n_noise)}}
    if kind == "classification":
        P = softmax(rng.normal(0, 2, size=(n, 3)), axis=1)
        y = (P.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)  # one draw per row from P
        return y, {"real": P, **{f"noise{i}": softmax(rng.normal(0, 2, size=(n, 3)), axis=1) for i in range(n_noise)}}
    logits = rng.normal(-1, 2, size=(n, 5))
    y = (rng.random((n, 5)) < expit(logits)).astype(np.float32)
    return y, {"real": expit(logits), **{f"noise{i}": expit(rng.normal(-1, 2, size=(n, 5))) for i in range(n_noise)}}


TASK_OF = {"regression": REG, "classification": CLS, "multilabel": ML}


# ---- greedy -------------------------------------------------------------------------------
def test_greedy_picks_the_best_single_first_and_its_weights_are_pick_counts():
    y, candidates = noisy_regression(5)
    result = greedy_weights(candidates, y, REG, rounds=25)
    best_single = min(result["single_scores"], key=result["single_scores"].get)
    assert result["picks"][0] == best_single == "m00"
    assert result["trajectory"][0] == pytest.approx(result["single_scores"][best_single])
    weights = np.array(list(result["weights"].values()))
    assert weights.sum() == pytest.approx(1.0) and np.all(weights >= 0)
    used = result["rounds_used"]
    assert 1 <= used <= 25 and len(result["picks"]) == used and len(result["trajectory"]) == 25
    np.testing.assert_allclose(weights * used, np.round(weights * used), atol=1e-9)  # counts / rounds
    # independent errors: averaging several beats the best one, and the score is the weights' blend
    assert result["score"] == min(result["trajectory"]) < result["single_scores"][best_single]
    assert metrics.rmse(y, apply_weights(result["weights"], candidates, REG)) == pytest.approx(result["score"])
    assert sum(w > 0 for w in result["weights"].values()) >= 3


def test_greedy_keeps_the_best_round_so_more_rounds_never_hurt():
    y, candidates = noisy_regression(4, seed=3)
    scores = [greedy_weights(candidates, y, REG, rounds=r)["score"] for r in (1, 5, 25, 60)]
    assert all(later <= earlier + 1e-12 for earlier, later in zip(scores, scores[1:]))
    assert greedy_weights(candidates, y, REG, rounds=1)["weights"]["m00"] == 1.0
    with pytest.raises(ConfigError, match="blend.greedy_rounds"):
        greedy_weights(candidates, y, REG, rounds=0)


@pytest.mark.parametrize("task", [REG, MT, CLS, ML], ids=lambda t: t.kind)
def test_greedy_and_auto_handle_24_candidates_in_seconds(task):
    rng = np.random.default_rng(0)
    n = 400
    if task.is_regression:
        y, candidates = noisy_regression(24, n=n, targets=task.n_outputs)
    elif task.kind == "classification":
        y = rng.integers(0, 3, n)
        candidates = {
            f"m{i:02d}": softmax(2 * np.eye(3)[y] + rng.normal(0, 1 + 0.1 * i, size=(n, 3)), axis=1) for i in range(24)
        }
    else:
        y = (rng.random((n, 5)) < 0.3).astype(np.float32)
        candidates = {f"m{i:02d}": y + rng.normal(0, 1 + 0.1 * i, size=(n, 5)) for i in range(24)}
    started = time.perf_counter()
    result, oof = fit_blend(
        candidates, y, np.arange(n) % 5, task, BlendOptions(method="auto", max_candidates=6, per_class=False)
    )
    elapsed = time.perf_counter() - started
    assert elapsed < 30, elapsed  # a few seconds on one loaded core; the 6-candidate grid alone is 3003 points
    assert set(result["method_scores"]) == {"greedy", "stack"}  # 24 > max_candidates: no grid
    greedy = greedy_weights(candidates, y, task)
    assert sum(greedy["weights"].values()) == pytest.approx(1.0)
    singles = greedy["single_scores"].values()
    assert greedy["score"] >= max(singles) if greedy["greater_is_better"] else greedy["score"] <= min(singles)
    assert oof.shape == (n, task.n_outputs) and np.isfinite(oof).all()


@pytest.mark.parametrize("kind", ["regression", "classification", "multilabel"])
def test_informative_candidate_takes_nearly_all_the_weight(kind):
    task = TASK_OF[kind]
    for seed in range(2):
        y, candidates = informative_and_noise(kind, seed)
        greedy = greedy_weights(candidates, y, task)
        assert greedy["weights"]["real"] >= 0.8, (seed, greedy["weights"])
        shares = stack_weights(candidates, y, task)["weights"]
        noise = max(v for name, v in shares.items() if name != "real")
        assert shares["real"] >= 5 * noise, (seed, shares)
        if kind == "regression":  # one coefficient per candidate: the share is the weight itself
            assert shares["real"] >= 0.85, (seed, shares)


# ---- stacker ------------------------------------------------------------------------------
def test_stacker_oof_is_cross_fitted_so_noise_shows_no_gain():
    """y and all 20 candidates are independent noise. Scored on the rows it was fitted on, the ridge
    stacker beats the trivial predictor (the training mean); its cross-fitted OOF does not."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        n = 100
        y = rng.normal(size=(n, 1))
        candidates = {f"n{i:02d}": rng.normal(size=(n, 1)) for i in range(20)}
        trivial = metrics.rmse(y, np.full_like(y, y.mean()))
        in_sample = stack_weights(candidates, y, REG)["score"]
        result, oof = fit_blend(candidates, y, np.arange(n) % 5, REG, BlendOptions(method="stack"))
        assert in_sample < trivial, seed  # the fake gain of fitting on the scored rows
        assert result["score"] == pytest.approx(metrics.rmse(y, oof)) and result["score"] >= trivial, seed
        np.testing.assert_array_equal(oof, cross_fit("stack", candidates, y, np.arange(n) % 5, REG))


def test_stacker_fold_k_rows_come_from_a_fit_without_them():
    y, candidates = noisy_regression(3, seed=1, n=60)
    folds = np.arange(60) % 3
    _, oof = fit_blend(candidates, y, folds, REG, BlendOptions(method="stack"))
    y2 = y.copy()
    y2[folds == 0] += 5.0  # fold 0's targets change: only the other folds' stackers see it
    _, oof2 = fit_blend(candidates, y2, folds, REG, BlendOptions(method="stack"))
    np.testing.assert_array_equal(oof[folds == 0], oof2[folds == 0])
    assert not np.allclose(oof[folds != 0], oof2[folds != 0])


@pytest.mark.parametrize("task", [REG, MT, CLS, ML], ids=lambda t: t.kind)
def test_stacker_predictions_have_the_task_shape(task):
    rng = np.random.default_rng(2)
    n = 90
    if task.is_regression:
        y, candidates = noisy_regression(3, n=n, targets=task.n_outputs)
    elif task.kind == "classification":
        y = rng.integers(0, 3, n)
        candidates = {f"m{i}": softmax(np.eye(3)[y] + rng.normal(size=(n, 3)), axis=1) for i in range(3)}
    else:
        y = (rng.random((n, 5)) < 0.3).astype(np.float32)
        y[:, 4] = 0  # a class without positives: its stacker is its (clipped) prevalence
        candidates = {f"m{i}": y + rng.normal(size=(n, 5)) for i in range(3)}
    fitted = stack_weights(candidates, y, task)
    P = predict_blend({"method": "stack", **fitted}, candidates, task)
    assert P.shape == (n, task.n_outputs) and np.isfinite(P).all()
    assert sum(fitted["weights"].values()) == pytest.approx(1.0)
    if task.kind == "classification":
        np.testing.assert_allclose(P.sum(axis=1), 1.0)
    if task.kind == "multilabel":
        assert np.all((P > 0) & (P < 1)) and P[:, 4].max() < 1e-3


def test_classification_stacker_copes_with_classes_missing_from_the_training_rows():
    rng = np.random.default_rng(4)
    n = 60
    y = rng.integers(0, 2, n)  # class "c" never occurs
    candidates = {f"m{i}": softmax(2 * np.eye(3)[y] + rng.normal(size=(n, 3)), axis=1) for i in range(2)}
    fitted = {"method": "stack", **stack_weights(candidates, y, CLS)}
    P = predict_blend(fitted, candidates, CLS)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    assert P[:, 2].max() < 1e-5 and metrics.accuracy(y, P, CLS) > 0.8
    one_class = predict_blend({"method": "stack", **stack_weights(candidates, np.zeros(n, int), CLS)}, candidates, CLS)
    assert np.all(one_class.argmax(axis=1) == 0)


# ---- auto ---------------------------------------------------------------------------------
def test_auto_records_every_method_it_compared_and_keeps_the_best():
    y, candidates = noisy_regression(3, n=150)
    folds = np.arange(150) % 5
    result, oof = fit_blend(candidates, y, folds, REG, BlendOptions(method="auto", step=0.1))
    scores = result["method_scores"]
    assert list(scores) == ["grid", "greedy", "stack"] and result["requested"] == "auto"
    assert result["method"] == min(scores, key=scores.get)
    for method, score in scores.items():  # each score is that method cross-fitted over the folds
        assert score == pytest.approx(
            metrics.rmse(y, cross_fit(method, candidates, y, folds, REG, BlendOptions(step=0.1)))
        )
    if result["method"] != "stack":  # grid and greedy: the OOF blend is the full fit applied in-sample
        np.testing.assert_allclose(predict_blend(result, candidates, REG), oof)


def test_auto_picks_the_stacker_where_only_it_can_undo_a_shared_bias():
    """Both candidates hedge towards 3 and sit 1 too high: no convex weights fix that, a ridge does."""
    rng = np.random.default_rng(0)
    y = rng.normal(3, 1, size=(200, 1))
    candidates = {name: 4 + 0.5 * (y - 3) + rng.normal(0, 0.3, size=y.shape) for name in ("a", "b")}
    result, oof = fit_blend(candidates, y, np.arange(200) % 4, REG, BlendOptions(method="auto"))
    assert result["method"] == "stack", result["method_scores"]
    assert result["method_scores"]["stack"] < 0.5 * min(
        result["method_scores"]["grid"], result["method_scores"]["greedy"]
    )
    assert metrics.rmse(y, oof) == pytest.approx(result["score"])


def test_auto_prefers_the_simpler_method_on_a_tie_and_skips_the_grid_for_many_candidates():
    y, candidates = noisy_regression(1, n=80)
    result, _ = fit_blend(candidates, y, np.arange(80) % 4, REG, BlendOptions(method="auto"))
    assert result["method_scores"]["grid"] == result["method_scores"]["greedy"]  # one candidate: the same blend
    assert result["method"] != "greedy"  # the tie goes to the grid (unless the stacker beats both)
    y, candidates = noisy_regression(7, n=80)
    result, _ = fit_blend(candidates, y, np.arange(80) % 4, REG, BlendOptions(method="auto", max_candidates=6))
    assert "grid" not in result["method_scores"]
    result, _ = fit_blend(candidates, y, np.arange(80) % 4, REG, BlendOptions(method="grid", max_candidates=6))
    assert result["method"] == "grid" and result["method_scores"] == {} and len(result["searched"]) == 6


def sharp_and_soft(seed, n=400, n_classes=5):
    """One sharp candidate, right on 92 % with probability 0.999 (its misses cost log loss dearly),
    and two soft ones, right on 70 % with 0.5: the blend criterion and accuracy disagree."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)

    def candidate(accuracy, top):
        pick = np.where(rng.random(n) < accuracy, y, (y + rng.integers(1, n_classes, n)) % n_classes)
        P = np.full((n, n_classes), (1 - top) / (n_classes - 1))
        P[np.arange(n), pick] = top
        return P

    return y, {"sharp": candidate(0.92, 0.999), "soft1": candidate(0.7, 0.5), "soft2": candidate(0.7, 0.5)}


def test_single_picks_by_the_primary_metric_and_predicts_that_candidate_alone():
    task = TaskSpec("classification", "id", ["label"], classes=list("abcde"))
    y, candidates = sharp_and_soft(0)
    candidates["soft1"] = np.where(np.eye(5)[y] > 0, 0.6, 0.1)  # always right, softer: best log loss too
    candidates["soft2"] = candidates["soft1"][::-1].copy()
    result = single_weights(candidates, y, task)
    assert result["chosen"] == "soft1" and result["weights"] == {"sharp": 0.0, "soft1": 1.0, "soft2": 0.0}
    y, candidates = sharp_and_soft(1)
    rng = np.random.default_rng(1)
    pick = np.where(rng.random(400) < 0.85, y, (y + 1) % 5)
    candidates["calibrated"] = np.where(np.arange(5) == pick[:, None], 0.85, 0.0375)  # 85 % right, says so
    result = single_weights(candidates, y, task)
    # the sharp candidate has the best accuracy, the calibrated one the best log loss: single goes by accuracy
    assert metrics.accuracy(y, candidates["calibrated"], task) < metrics.accuracy(y, candidates["sharp"], task)
    assert result["single_scores"]["calibrated"] < result["single_scores"]["sharp"]
    assert result["chosen"] == "sharp"
    candidates.pop("calibrated")
    fitted, oof = fit_blend(candidates, y, np.arange(400) % 5, task, BlendOptions(method="single"))
    np.testing.assert_allclose(oof, candidates["sharp"] / candidates["sharp"].sum(axis=1, keepdims=True))
    assert fitted["method"] == "single" and fitted["method_scores"] == {}
    # tags: one candidate has no weights to refine per class, even where asked
    y_tags = (np.random.default_rng(2).random((200, 5)) < 0.3).astype(np.float32)
    tags = {f"m{i}": y_tags + np.random.default_rng(i).normal(0, 0.5 + i, size=y_tags.shape) for i in range(3)}
    fitted, _ = fit_blend(tags, y_tags, np.arange(200) % 4, ML, BlendOptions(method="single", per_class=True))
    assert fitted["chosen"] == "m0" and fitted["per_class"]["applied"] is False and "class_weights" not in fitted
    # regression: the lowest RMSE (the primary metric is the criterion)
    y, candidates = noisy_regression(4, n=300)
    assert single_weights(candidates, y, REG)["chosen"] == min(candidates, key=lambda m: metrics.rmse(y, candidates[m]))


def test_plain_methods_match_their_search_and_bad_methods_are_config_errors():
    y, candidates = noisy_regression(3, n=100)
    folds = np.arange(100) % 4
    grid, oof = fit_blend(candidates, y, folds, REG, BlendOptions(method="grid", step=0.25))
    assert grid["weights"] == search_weights(candidates, y, REG, step=0.25)["weights"]
    np.testing.assert_allclose(oof, apply_weights(grid["weights"], candidates, REG))  # in-sample, as before
    greedy, _ = fit_blend(candidates, y, folds, REG, BlendOptions(method="greedy", greedy_rounds=10))
    assert greedy["weights"] == greedy_weights(candidates, y, REG, rounds=10)["weights"]
    with pytest.raises(ConfigError, match="blend.method: 'magic'"):
        fit_blend(candidates, y, folds, REG, BlendOptions(method="magic"))
    with pytest.raises(DataError, match="cross-fitting needs OOF rows from >= 2 folds"):
        fit_blend(candidates, y, np.zeros(100, int), REG, BlendOptions(method="stack"))


# ---- files and nesting --------------------------------------------------------------------
def test_blend_files_record_the_method_and_predict_test_with_the_full_stacker(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.normal(3, 1, size=(120, 1))
    ids, folds = np.arange(120).astype(str), np.arange(120) % 4
    test_rows = rng.normal(3, 1, size=(10, 1))
    for name in ("a", "b"):  # biased hedgers: the stacker wins (see above)
        oof = 4 + 0.5 * (y - 3) + rng.normal(0, 0.3, size=y.shape)
        save_npz(tmp_path / f"{name}_oof.npz", ids=ids, fold=folds, y=y, P__main=oof)
        save_npz(tmp_path / f"{name}_test.npz", ids=np.arange(10).astype(str), P__main=4 + 0.5 * (test_rows - 3))
    paths = {n: str(tmp_path / f"{n}_oof.npz") for n in ("a", "b")}
    tests = {n: str(tmp_path / f"{n}_test.npz") for n in ("a", "b")}
    result = blend_files(paths, tests, REG, tmp_path / "oof.npz", tmp_path / "test.npz", tmp_path / "w.json")
    written = read_json(tmp_path / "w.json")
    assert written["method"] == "stack" and written["requested"] == "auto"
    assert set(written["method_scores"]) == {"grid", "greedy", "stack"} and written["stacker"]["model"] == "ridge"
    # the test prediction is the stacker fitted on every OOF row, as recorded
    names = written["stacker"]["candidates"]
    test_stack = np.stack([load_npz(tests[n.split("/")[0]])["P__main"] for n in names])
    np.testing.assert_allclose(
        load_npz(tmp_path / "test.npz")["P"], predict_stacker(written["stacker"], test_stack, REG), rtol=1e-5
    )
    # ... while the OOF written is the cross-fitted one
    P = load_npz(tmp_path / "oof.npz")["P"]
    assert metrics.rmse(y, P) == pytest.approx(result["score"], rel=1e-5)


@pytest.mark.parametrize("method", ["single", "greedy", "stack", "auto"])
def test_nested_fold_k_rows_do_not_depend_on_fold_k_targets_for_every_method(method):
    y, candidates = noisy_regression(4, seed=5, n=100)
    folds = np.arange(100) % 4
    y2 = y.copy()
    y2[folds == 0] = np.random.default_rng(9).normal(size=((folds == 0).sum(), 1))
    before, chosen = nested_blend(candidates, y, folds, REG, BlendOptions(method=method), calibrate=True)
    after, _ = nested_blend(candidates, y2, folds, REG, BlendOptions(method=method), calibrate=True)
    np.testing.assert_array_equal(before[folds == 0], after[folds == 0])
    assert not np.allclose(before[folds != 0], after[folds != 0])
    assert len(chosen) == 4
    if method == "auto":  # the choice itself is re-made per outer fold, from the inner folds' comparison
        assert all(set(c["method_scores"]) == {"grid", "greedy", "stack"} for c in chosen)
        assert all(c["method"] == min(c["method_scores"], key=c["method_scores"].get) for c in chosen)
    else:
        assert all(c["method"] == method for c in chosen)


def test_nested_stacker_on_pure_noise_candidates_gains_nothing():
    gains = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        signal = rng.normal(0, 0.7, size=(100, 1))
        y = signal + rng.normal(0, 1, size=(100, 1))
        candidates = {"real": signal, **{f"noise{i}": rng.normal(0, 0.7, size=(100, 1)) for i in range(6)}}
        nested, _ = nested_blend(candidates, y, np.arange(100) % 5, REG, BlendOptions(method="stack"), calibrate=False)
        gains.append(metrics.rmse(y, signal) - metrics.rmse(y, nested))
    assert np.mean(gains) <= 0.0


def test_the_report_states_the_method_and_the_comparison(tmp_path):
    from audiofold.report import _plot_weights, write_scores_html

    fold = {0: {"rmse": 1.0}, 1: {"rmse": 1.2}}
    summary = {
        "task": "regression",
        "primary": "rmse",
        "greater_is_better": False,
        "candidates": {},
        "blend": {
            "in_sample": {"overall": {"rmse": 1.0}, "per_fold": fold, "note": "in-sample"},
            "method": "greedy",
            "method_requested": "auto",
            "method_scores": {"grid": 1.1, "greedy": 1.05, "stack": 1.2},
            "criterion": "rmse",
            "weights": {"b/h/main": 1.0},
        },
    }
    write_scores_html(summary, tmp_path / "t.html")
    html = (tmp_path / "t.html").read_text()
    assert "Blend method</b>: greedy ensemble selection (chosen by blend.method auto" in html
    assert "grid 1.1000, greedy 1.0500, stack 1.2000" in html
    summary["blend"].update(method="stack", method_requested="stack", method_scores={"stack": 1.0})
    write_scores_html(summary, tmp_path / "t.html")
    assert "stacker (cross-fitted linear model" in (tmp_path / "t.html").read_text()
    summary["blend"].update(method="single", method_requested="single", method_scores={})
    write_scores_html(summary, tmp_path / "t.html")
    assert "Blend method</b>: the best single candidate alone, no blend</li>" in (tmp_path / "t.html").read_text()
    _plot_weights({"a": 0.7, "b": 0.3}, str(tmp_path / "w.png"), "stack")
    assert (tmp_path / "w.png").stat().st_size > 1000
