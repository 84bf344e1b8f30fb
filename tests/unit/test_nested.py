"""The nested ensemble score: every choice made on OOF is re-made per outer fold without that fold."""

import numpy as np
import pytest
from scipy.special import expit

from audiofold import metrics
from audiofold.ensemble import blend_nested
from audiofold.ensemble.blend import search_weights
from audiofold.ensemble.blend_nested import nested_best_single, nested_blend, nested_files, single_beats_blend
from audiofold.ensemble.options import BlendOptions
from audiofold.errors import DataError
from audiofold.io import load_npz, read_json, save_npz
from audiofold.tasks import TaskSpec

REG = TaskSpec("regression", "id", ["score"])
RATING = TaskSpec("regression", "id", ["score"], scale={"min": 1.0, "max": 5.0, "step": 1.0})
ML = TaskSpec("multilabel", "id", ["labels"], classes=["a", "b", "c", "d"], label_sep=",")


def signal_and_noise(seed, n=80, n_noise=3):
    """y = signal + noise; "real" predicts the signal (the best any model can do), "noise*" are
    pure noise with the signal's spread: any weight they win is fitted to chance."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(0, 0.7, size=(n, 1))
    y = signal + rng.normal(0, 1, size=(n, 1))
    candidates = {"real": signal, **{f"noise{i}": rng.normal(0, 0.7, size=(n, 1)) for i in range(n_noise)}}
    return y, candidates, np.arange(n) % 5


def test_pure_noise_candidates_gain_in_sample_but_not_nested():
    in_sample_gain, nested_gain, noise_weight = [], [], []
    for seed in range(20):
        y, candidates, folds = signal_and_noise(seed)
        single = metrics.rmse(y, candidates["real"])
        in_sample = search_weights(candidates, y, REG, step=0.1)
        nested, chosen = nested_blend(candidates, y, folds, REG, BlendOptions(step=0.1, method="grid"), calibrate=False)
        in_sample_gain.append(single - in_sample["score"])
        nested_gain.append(single - metrics.rmse(y, nested))
        noise_weight.append(1 - in_sample["weights"]["real"])
        assert len(chosen) == 5 and all(sum(c["weights"].values()) == pytest.approx(1) for c in chosen)
    # the in-sample score rewards fitting noise: it beats the real candidate on average ...
    assert np.mean(in_sample_gain) > 0.003 and max(noise_weight) >= 0.2
    # ... the nested score does not: adding noise candidates costs, never gains, on average
    assert np.mean(nested_gain) <= 0.0


def perfect_on_fold_zero(seed=0, n=100):
    """ "a" is decent everywhere; "b" is the truth itself on fold 0 and elsewhere makes a's errors,
    10 % larger: on folds 1-4 any weight on "b" only adds error, on all rows together it pays."""
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 1, size=(n, 1))
    folds = np.arange(n) % 5
    a = y + rng.normal(0, 0.5, size=y.shape)
    b = np.where((folds == 0)[:, None], y, y + 1.1 * (a - y))
    return y, {"a": a, "b": b}, folds


def test_fold_k_weights_are_chosen_without_fold_k_rows():
    y, candidates, folds = perfect_on_fold_zero()
    in_sample = search_weights(candidates, y, REG, step=0.1)
    assert in_sample["weights"]["b"] > 0  # fold 0's perfect rows buy "b" weight in-sample
    nested, chosen = nested_blend(candidates, y, folds, REG, BlendOptions(step=0.1, method="grid"), calibrate=False)
    assert chosen[0]["fold"] == 0 and chosen[0]["weights"] == {"a": 1.0}  # the other folds see only garbage
    np.testing.assert_array_equal(nested[folds == 0], candidates["a"][folds == 0])


def test_fold_k_rows_do_not_depend_on_fold_k_targets():
    """With calibration on: rewrite fold 0's targets; fold 0's nested predictions stay bit-identical,
    while the other folds' change (fold 0's rows are in their calibrators and weights)."""
    y, candidates, folds = perfect_on_fold_zero(seed=1)
    in_fold0 = folds == 0
    y2 = y.copy()
    y2[in_fold0] = np.random.default_rng(9).normal(0, 1, size=(in_fold0.sum(), 1))
    before, _ = nested_blend(candidates, y, folds, REG, BlendOptions(step=0.1, method="grid"), calibrate=True)
    after, _ = nested_blend(candidates, y2, folds, REG, BlendOptions(step=0.1, method="grid"), calibrate=True)
    np.testing.assert_array_equal(before[in_fold0], after[in_fold0])
    assert not np.allclose(before[~in_fold0], after[~in_fold0])


def test_nested_rounding_is_decided_per_outer_fold():
    rng = np.random.default_rng(0)
    y = rng.integers(1, 6, size=(200, 1)).astype(np.float64)
    hedging = 3.0 + 0.5 * (y - 3.0) + rng.normal(0, 0.5, size=y.shape)  # rounding adds error
    folds = np.arange(200) % 4
    auto, chosen = nested_blend(
        {"m": hedging}, y, folds, RATING, BlendOptions(round_mode="auto", method="grid"), calibrate=False
    )
    assert [c["rounding"]["applied"] for c in chosen] == [False] * 4
    np.testing.assert_allclose(auto, np.clip(hedging, 1, 5))  # clipped, not rounded
    always, chosen = nested_blend(
        {"m": hedging}, y, folds, RATING, BlendOptions(round_mode="always", method="grid"), calibrate=False
    )
    assert all(c["rounding"]["applied"] for c in chosen)
    np.testing.assert_array_equal(always, np.round(np.clip(hedging, 1, 5)))
    assert metrics.rmse(y, auto) < metrics.rmse(y, always)


def test_nested_per_class_calibration_lifts_lwlrap():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 1.5, size=(400, 4))
    y = (rng.random((400, 4)) < expit(logits)).astype(np.float32)
    shifted = expit(logits + np.array([3.0, 0.0, -2.0, 0.5]))  # right within each class, shifted per class
    folds = np.arange(400) % 4
    calibrated, chosen = nested_blend(
        {"m": shifted}, y, folds, ML, BlendOptions(method="grid", per_class=False), calibrate=True
    )
    raw, _ = nested_blend({"m": shifted}, y, folds, ML, BlendOptions(method="grid", per_class=False), calibrate=False)
    assert all(c["calibrated"] == ["m"] for c in chosen)
    assert metrics.lwlrap(y, calibrated) > metrics.lwlrap(y, raw) + 0.05


def test_nested_files_write_scores_and_choices(tmp_path):
    y, candidates, folds = perfect_on_fold_zero()
    ids = np.array([f"c{i}" for i in range(len(y))])
    save_npz(tmp_path / "x.npz", ids=ids, fold=folds, y=y, P__main=candidates["a"], P__alt=candidates["b"])
    summary = nested_files(
        {"bb/hh": tmp_path / "x.npz"},
        REG,
        tmp_path / "nested.npz",
        tmp_path / "nested.json",
        BlendOptions(step=0.1),
        calibrate=True,
    )
    written = load_npz(tmp_path / "nested.npz")
    single = summary["best_single"]
    assert summary == read_json(tmp_path / "nested.json") | {
        "per_fold": summary["per_fold"],
        "best_single": single,  # JSON keys its per-fold scores by strings
    }
    assert len(single["chosen"]) == 5 and set(single["chosen"]) <= {"bb/hh/main", "bb/hh/alt"}
    assert set(single["per_fold"]) == set(range(5)) and "rmse" in single["overall"]
    assert summary["overall"]["rmse"] == pytest.approx(metrics.rmse(y, written["P"]), rel=1e-6)
    assert set(summary["per_fold"]) == set(range(5)) and len(summary["folds"]) == 5
    assert set(summary["folds"][0]["weights"]) <= {"bb/hh/main", "bb/hh/alt"}
    np.testing.assert_array_equal(written["ids"], ids)
    # how sure "blend beats best single" is, by resampling rows ...
    comparison = single["blend_minus_single"]
    assert comparison["unit"] == "rows" and comparison["n_units"] == len(y)
    rmse = comparison["metrics"]["rmse"]
    assert rmse["difference"] == pytest.approx(summary["overall"]["rmse"] - single["overall"]["rmse"])
    assert rmse["ci_low"] <= rmse["difference"] <= rmse["ci_high"]
    # ... or the fold groups prepare wrote, whatever the targets' row order
    order = np.arange(len(y))[::-1]
    save_npz(
        tmp_path / "targets.npz",
        ids=ids[order],
        y=y[order],
        fold=folds[order],
        group=(np.arange(len(y)) // 4)[order].astype(str),
    )
    grouped = nested_files(
        {"bb/hh": tmp_path / "x.npz"},
        REG,
        tmp_path / "n2.npz",
        tmp_path / "n2.json",
        targets_path=tmp_path / "targets.npz",
    )["best_single"]["blend_minus_single"]
    assert grouped["unit"] == "groups" and grouped["n_units"] == len(y) // 4
    save_npz(tmp_path / "other.npz", ids=ids[:10], y=y[:10], fold=folds[:10], group=ids[:10])
    with pytest.raises(DataError, match="no fold group for OOF id"):
        nested_files(
            {"bb/hh": tmp_path / "x.npz"},
            REG,
            tmp_path / "n3.npz",
            tmp_path / "n3.json",
            targets_path=tmp_path / "other.npz",
        )


def test_a_single_that_beats_the_blend_on_nearly_every_resample_is_a_warning(tmp_path, caplog, monkeypatch):
    def comparison(share):
        return {
            "n_resamples": 1000,
            "metrics": {
                "accuracy": {"difference": -0.01, "ci_low": -0.02, "ci_high": 0.0, "a_at_least_as_good": share},
                "log_loss": {"difference": -0.4, "ci_low": -0.7, "ci_high": -0.2, "a_at_least_as_good": 1.0},
            },
        }

    CLS = TaskSpec("classification", "id", ["label"], classes=["a", "b"])
    warning = single_beats_blend(comparison(0.06), CLS, ["a/knn/main", "b/lin/main", "a/knn/main"])
    assert warning.startswith(
        "the nested best single (a/knn/main, b/lin/main) beats the nested blend on accuracy in 94 %"
    )
    assert "fitted on log loss, where blend minus single is -0.4000" in warning
    assert "blend.method: single" in warning
    assert single_beats_blend(comparison(0.5), CLS, ["a/knn/main"]) is None
    assert single_beats_blend({"metrics": {"accuracy": {"difference": 0.0}}}, CLS, ["a/b/c"]) is None  # no interval

    # in the step: with the threshold above any share the step must warn, log and record it; at 0 never
    y, candidates, folds = perfect_on_fold_zero()
    ids = np.array([f"c{i}" for i in range(len(y))])
    save_npz(tmp_path / "x.npz", ids=ids, fold=folds, y=y, P__main=candidates["a"], P__alt=candidates["b"])
    for threshold, expect_warning in ((1.01, True), (0.0, False)):
        monkeypatch.setattr(blend_nested, "SINGLE_WINS_SHARE", threshold)
        caplog.clear()
        with caplog.at_level("WARNING", logger="audiofold.ensemble.blend_nested"):
            single = nested_files(
                {"bb/hh": tmp_path / "x.npz"},
                REG,
                tmp_path / "n.npz",
                tmp_path / "n.json",
                BlendOptions(step=0.1),
                calibrate=False,
            )["best_single"]
        assert ("warning" in single) == expect_warning
        assert ("beats the nested blend on rmse" in caplog.text) == expect_warning
        if expect_warning:
            assert (
                single["warning"] in caplog.text
                and single["warning"] == read_json(tmp_path / "n.json")["best_single"]["warning"]
            )


def test_too_few_folds_to_nest():
    y, candidates, _ = perfect_on_fold_zero()
    two = np.arange(len(y)) % 2
    with pytest.raises(DataError, match="cv.n_folds >= 3"):
        nested_blend(candidates, y, two, REG, calibrate=True)
    nested_blend(
        candidates, y, two, REG, BlendOptions(method="grid"), calibrate=False
    )  # without calibration two folds suffice
    for method in ("auto", "stack"):  # ... unless the blend method itself is cross-fitted on the other folds
        with pytest.raises(DataError, match=f"cv.n_folds >= 3 \\(blend.method {method}"):
            nested_blend(candidates, y, two, REG, BlendOptions(method=method), calibrate=False)


def test_too_few_folds_are_reported_not_fatal_in_the_workflow_step(tmp_path):
    y, candidates, _ = perfect_on_fold_zero()
    save_npz(
        tmp_path / "x.npz", ids=np.arange(len(y)).astype(str), fold=np.arange(len(y)) % 2, y=y, P__main=candidates["a"]
    )
    summary = nested_files({"bb/hh": tmp_path / "x.npz"}, REG, tmp_path / "n.npz", tmp_path / "n.json")
    assert summary["overall"] is None and "cv.n_folds >= 3" in summary["skipped"]


def test_nested_best_single_picks_per_outer_fold_on_the_other_folds_only():
    rng = np.random.default_rng(3)
    n = 100
    folds = np.arange(n) % 5
    y = rng.normal(size=(n, 1))
    # "good" tracks y everywhere but fold 2; "fold2" tracks it only on fold 2 (a lucky candidate)
    good = y + rng.normal(0, 0.3, size=(n, 1))
    good[folds == 2] = rng.normal(size=(20, 1))
    lucky = rng.normal(size=(n, 1))
    lucky[folds == 2] = y[folds == 2]
    candidates = {"good": good, "lucky": lucky}
    P, chosen = nested_best_single(candidates, y, folds, REG)
    # on fold 2 the choice is made without fold 2's rows, where "lucky" would have won
    assert chosen == ["good"] * 5
    np.testing.assert_allclose(P, good)
    # in-sample, "lucky" is the better single candidate on fold 2's rows; nested never sees them
    assert metrics.rmse(y[folds == 2], lucky[folds == 2]) < metrics.rmse(y[folds == 2], good[folds == 2])
    # fold k's predictions do not depend on fold k's targets
    y_changed = y.copy()
    y_changed[folds == 0] = lucky[folds == 0]
    P_changed, chosen_changed = nested_best_single(candidates, y_changed, folds, REG)
    np.testing.assert_array_equal(P_changed[folds == 0], P[folds == 0])
    assert chosen_changed[0] == "good"
    # ratings are made valid (clipped to the scale), not rounded
    P_rating, _ = nested_best_single({"c": np.full((n, 1), 7.26)}, y, folds, RATING)
    assert (P_rating == 5.0).all()
    P_rating, _ = nested_best_single({"c": np.full((n, 1), 2.26)}, y, folds, RATING)
    assert np.allclose(P_rating, 2.26)
