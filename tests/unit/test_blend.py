from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax

from audiofold import metrics
from audiofold.ensemble.blend import apply_weights, rank_matrix, search_weights, simplex_grid
from audiofold.errors import ConfigError, DataError
from audiofold.tasks import TaskSpec

REG = TaskSpec("regression", "id", ["score"])
CLS = TaskSpec("classification", "id", ["label"], classes=["a", "b", "c"])
ML = TaskSpec("multilabel", "id", ["labels"], classes=["a", "b", "c", "d"], label_sep=",")
TASKS = {"regression": REG, "classification": CLS, "multilabel": ML}


def noisy_regression(n_candidates, seed=0, n=80):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, 1))
    return y, {f"m{i}": y + rng.normal(0, 1 + 0.2 * i, size=y.shape) for i in range(n_candidates)}


def random_problem(kind, n_candidates, seed, n=30):
    rng = np.random.default_rng(seed)
    if kind == "regression":
        y = rng.normal(size=(n, 1))
        return y, {f"m{i}": y + rng.normal(0, rng.uniform(0.2, 2), size=y.shape) for i in range(n_candidates)}
    if kind == "classification":
        y = rng.integers(0, 3, n)
        onehot = np.eye(3)[y]
        return y, {
            f"m{i}": softmax(onehot * rng.uniform(0, 3) + rng.normal(size=(n, 3)), axis=1) for i in range(n_candidates)
        }
    y = (rng.random((n, 4)) < 0.3).astype(np.float32)
    return y, {f"m{i}": np.clip(y * rng.uniform(0, 1) + rng.random((n, 4)), 0, 1) for i in range(n_candidates)}


# ---- grid ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n_candidates,step", [(1, 0.1), (2, 0.1), (3, 0.25), (4, 0.2), (6, 0.1)])
def test_simplex_grid_enumerates_every_composition_once(n_candidates, step):
    grid = simplex_grid(n_candidates, step)
    units = round(1 / step)
    assert len(grid) == comb(units + n_candidates - 1, n_candidates - 1)
    assert len({tuple(np.round(row * units).astype(int)) for row in grid}) == len(grid)
    assert np.all(grid >= 0)
    np.testing.assert_allclose(grid.sum(axis=1), 1.0)
    np.testing.assert_array_equal(grid[:n_candidates], np.eye(n_candidates))  # vertices first


def test_step_must_divide_one():
    with pytest.raises(ConfigError, match="blend.step"):
        simplex_grid(2, 0.3)


def test_rank_matrix_scales_to_unit_interval_and_keeps_row_order():
    P = np.array([[0.1, 5.0], [0.3, 1.0], [0.2, 3.0]])
    ranks = rank_matrix(P)
    np.testing.assert_allclose(ranks, [[0.0, 1.0], [0.4, 0.6], [0.2, 0.8]])
    assert (np.argsort(ranks, axis=1) == np.argsort(P, axis=1)).all()
    # so a single candidate's LWLRAP is unchanged by the transform
    y = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    assert metrics.lwlrap(y, ranks) == pytest.approx(metrics.lwlrap(y, P))


# ---- search -------------------------------------------------------------------------------
def test_regression_blend_of_independent_errors_beats_each_candidate():
    y, candidates = noisy_regression(2)
    result = search_weights(candidates, y, REG, step=0.1)
    assert result["criterion"] == "rmse" and result["greater_is_better"] is False
    assert result["n_grid"] == 11
    assert 0 < result["weights"]["m0"] < 1 and result["weights"]["m0"] >= result["weights"]["m1"]
    assert result["score"] < min(result["single_scores"].values())
    blended = apply_weights(result["weights"], candidates, REG)
    assert metrics.rmse(y, blended) == pytest.approx(result["score"])


def test_ties_resolve_to_the_first_vertex_independent_of_dict_order():
    y, candidates = noisy_regression(1)
    same = {"b": candidates["m0"], "a": candidates["m0"].copy()}
    result = search_weights(same, y, REG)
    assert result["weights"] == {"b": 0.0, "a": 1.0}  # equal scores: names break the tie
    reordered = search_weights(dict(reversed(list(same.items()))), y, REG)
    assert reordered["weights"] == result["weights"]


def test_only_the_best_max_candidates_enter_the_grid():
    y, candidates = noisy_regression(4)
    result = search_weights(candidates, y, REG, step=0.25, max_candidates=3)
    by_score = sorted(result["single_scores"], key=result["single_scores"].get)  # rmse: lowest first
    assert result["searched"] == by_score[:3]
    assert result["weights"][by_score[3]] == 0.0
    assert result["n_grid"] == comb(4 + 2, 2)
    assert set(result["weights"]) == set(candidates)


def test_classification_blend_uses_log_loss_and_returns_distributions():
    y, candidates = random_problem("classification", 3, seed=4, n=60)
    result = search_weights(candidates, y, CLS, step=0.25)
    assert result["criterion"] == "log_loss" and result["greater_is_better"] is False
    blended = apply_weights(result["weights"], candidates, CLS)
    np.testing.assert_allclose(blended.sum(axis=1), 1.0)
    assert metrics.classification_log_loss(y, blended, CLS) == pytest.approx(result["score"])


def test_multilabel_blend_rank_averages():
    y, candidates = random_problem("multilabel", 2, seed=5, n=40)
    result = search_weights(candidates, y, ML, step=0.1)
    assert result["criterion"] == "lwlrap" and result["greater_is_better"] is True
    blended = apply_weights(result["weights"], candidates, ML)
    assert np.all((blended >= 0) & (blended <= 1))
    assert metrics.lwlrap(y, blended) == pytest.approx(result["score"])
    # single scores are taken on the same rank transform as the blend
    assert result["single_scores"]["m0"] == pytest.approx(metrics.lwlrap(y, candidates["m0"]))


def test_bad_candidates_are_data_errors():
    y, candidates = noisy_regression(2)
    with pytest.raises(DataError, match="no candidates"):
        search_weights({}, y, REG)
    with pytest.raises(DataError, match="different shapes"):
        search_weights({"a": candidates["m0"], "b": candidates["m1"][:10]}, y, REG)
    with pytest.raises(DataError, match="no predictions"):
        apply_weights({"missing": 1.0}, candidates, REG)


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(sorted(TASKS)), n_candidates=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_blend_weights_lie_on_the_simplex_and_never_lose_to_the_best_single(kind, n_candidates, seed):
    y, candidates = random_problem(kind, n_candidates, seed)
    task = TASKS[kind]
    result = search_weights(candidates, y, task, step=0.25)
    weights = np.array(list(result["weights"].values()))
    assert np.all(weights >= 0) and weights.sum() == pytest.approx(1.0)
    singles = result["single_scores"].values()
    if result["greater_is_better"]:
        assert result["score"] >= max(singles)
    else:
        assert result["score"] <= min(singles)


def test_blend_files_decide_rounding_on_the_oof_blend_and_write_what_is_submitted(tmp_path):
    from audiofold.ensemble.blend import blend_files
    from audiofold.ensemble.options import BlendOptions
    from audiofold.io import load_npz, read_json, save_npz

    rating = TaskSpec("regression", "id", ["score"], scale={"min": 1.0, "max": 5.0, "step": 1.0})
    rng = np.random.default_rng(0)
    y = rng.integers(1, 6, size=(200, 1)).astype(np.float64)
    ids, folds = np.arange(200).astype(str), np.arange(200) % 4
    for name in ("a", "b"):  # two hedging candidates: their blend sits between grid points
        oof = 3.0 + 0.5 * (y - 3.0) + rng.normal(0, 0.5, size=y.shape)
        save_npz(tmp_path / f"{name}_oof.npz", ids=ids, fold=folds, y=y, P__main=oof)
        save_npz(tmp_path / f"{name}_test.npz", ids=np.array(["t0", "t1"]), P__main=np.array([[0.2], [3.4]]))
    paths = {n: str(tmp_path / f"{n}_oof.npz") for n in ("a", "b")}
    tests = {n: str(tmp_path / f"{n}_test.npz") for n in ("a", "b")}
    for mode, rounded in (("auto", False), ("always", True)):
        result = blend_files(
            paths,
            tests,
            rating,
            tmp_path / "oof.npz",
            tmp_path / "test.npz",
            tmp_path / "w.json",
            BlendOptions(round_mode=mode, method="grid"),
        )
        assert result["rounding"]["applied"] is rounded and read_json(tmp_path / "w.json")["rounding"]["mode"] == mode
        P = load_npz(tmp_path / "oof.npz")["P"]
        assert P.min() >= 1.0 and P.max() <= 5.0
        assert np.allclose(P, np.round(P)) is rounded
        # the OOF file holds exactly what is submitted, so metrics.json scores it
        assert metrics.rmse(y, P) == pytest.approx(result["rounding"]["rounded" if rounded else "unrounded"], rel=1e-6)
        np.testing.assert_allclose(
            load_npz(tmp_path / "test.npz")["P"][:, 0], [1.0, 3.0 if rounded else 3.4], rtol=1e-6
        )
