"""The seeds' heads: loss terms do what they claim, nested search stays in the fold, determinism."""

import joblib
import numpy as np
import pytest
import torch

from audiofold.errors import ConfigError
from audiofold.heads import build_head
from audiofold.heads.lgbm import LGBMHead
from audiofold.heads.mlp import inverse_sqrt_class_weights, smooth_positives
from audiofold.heads.prompt import gaussian_label_distribution, scale_values
from audiofold.heads.torch_base import LayerWeights
from audiofold.heads.va import correlation_penalty, variance_penalty
from audiofold.tasks import TaskSpec

RATING = TaskSpec("regression", "id", ["score"], scale={"min": 0.0, "max": 5.0, "step": 0.5})
MULTI = TaskSpec("multitarget", "id", ["valence", "arousal"])
CLS = TaskSpec("classification", "id", ["label"], classes=["a", "b", "c"])
ML = TaskSpec("multilabel", "id", ["labels"], classes=["a", "b", "c"], label_sep=",")
FAST = {"epochs": 3, "batch_size": 16, "device": "cpu"}


def rating_data(n=80, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = np.clip(np.round((2.5 + X[:, 0] + 0.3 * rng.normal(size=n)) * 2) / 2, 0, 5).astype(np.float32)[:, None]
    return X, y


def sequences(X, seed=0):
    """Variable-length frame sequences whose frame mean is X's row."""
    rng = np.random.default_rng(seed)
    return [x + 0.1 * rng.normal(size=(int(rng.integers(3, 9)), len(x))).astype(np.float32) for x in X]


def test_ldl_target_is_a_normalised_gaussian_centred_on_the_label():
    values = torch.as_tensor(scale_values(RATING.scale), dtype=torch.float32)
    assert values.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]
    target = gaussian_label_distribution(torch.tensor([2.0, 4.5]), values, sigma=0.5)
    torch.testing.assert_close(target.sum(dim=1), torch.ones(2))
    assert target.argmax(dim=1).tolist() == [4, 9]
    # symmetric around the label and shaped like exp(-d^2 / (2 sigma^2))
    assert torch.isclose(target[0, 3], target[0, 5])
    assert torch.isclose(target[0, 3] / target[0, 4], torch.tensor(float(np.exp(-0.5))), atol=1e-6)


def test_correlation_penalty_decouples_two_outputs_on_a_toy_problem():
    # two targets that share a strong common factor; the penalty lowers the predicted correlation
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    common = X[:, 0]
    y = np.stack([common + 0.5 * X[:, 1], common + 0.5 * X[:, 2]], axis=1).astype(np.float32)

    def fitted_correlation(lambda_corr):
        head = build_head(
            {
                "type": "va",
                "lambda_corr": lambda_corr,
                "lambda_var": 0.0,
                "epochs": 20,
                "patience": 20,
                "hidden": 32,
                "device": "cpu",
            },
            MULTI,
            seed=0,
        ).fit(X, y)
        P = head.predict(X)["main"]
        return np.corrcoef(P[:, 0], P[:, 1])[0, 1]

    assert fitted_correlation(2.0) < fitted_correlation(0.0) - 0.1
    pred = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.1]])
    assert correlation_penalty(pred) > 0.99 and correlation_penalty(pred[:, :1]) == 0


def test_variance_penalty_spreads_predictions():
    y = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    shrunk, spread = y * 0.1 + 1.3, y.clone()
    assert variance_penalty(shrunk, y) > 0 and variance_penalty(spread, y) == 0
    # gradient descent on the penalty alone widens shrunk predictions
    pred = shrunk.clone().requires_grad_(True)
    variance_penalty(pred, y).backward()
    stepped = pred - 0.5 * pred.grad
    assert stepped.std() > shrunk.std()


def test_layer_weights_are_a_softmax_mix_of_layers():
    module = LayerWeights(3)
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    torch.testing.assert_close(module(x), x.mean(dim=1))  # uniform at initialisation
    with torch.no_grad():
        module.logits.copy_(torch.tensor([0.0, 50.0, 0.0]))
    torch.testing.assert_close(module(x), x[:, 1], atol=1e-4, rtol=0)


def test_multilabel_class_weights_and_positive_smoothing():
    y = np.array([[1, 0, 1]] * 4 + [[1, 1, 0]] * 12, dtype=np.float32)  # counts 16, 12, 4
    weights = inverse_sqrt_class_weights(y)
    assert np.isclose(weights.mean(), 1.0) and weights[2] > weights[1] > weights[0]
    np.testing.assert_allclose(weights[2] / weights[0], 2.0, rtol=1e-6)
    np.testing.assert_allclose(smooth_positives(torch.tensor([1.0, 0.0]), 0.1).numpy(), [0.9, 0.0])


@pytest.mark.parametrize("inputs", ["sequence", "pooled"])
def test_prompt_head_rating_variants_and_determinism(inputs, tmp_path):
    X, y = rating_data()
    data = sequences(X) if inputs == "sequence" else X
    params = {"type": "prompt", "inputs": inputs, "d_model": 12, "n_heads": 6, "hidden": 16, **FAST}
    first = build_head(params, RATING, seed=5).fit(data, y)
    P = first.predict(data)
    assert set(P) == {"ev", "reg", "mix", "knn"}
    assert all(v.shape == (len(X), 1) for v in P.values())
    np.testing.assert_allclose(P["mix"], (P["ev"] + P["reg"]) / 2)
    assert (P["ev"] >= 0).all() and (P["ev"] <= 5).all()
    assert len(first.history) >= 1 and {"rmse_mix", "rmse_ev", "rmse_reg"} <= set(first.history[0])
    second = build_head(params, RATING, seed=5).fit(data, y)
    for variant, values in second.predict(data).items():
        np.testing.assert_array_equal(values, P[variant])
    joblib.dump(first, tmp_path / "h.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "h.joblib").predict(data)["mix"], P["mix"])


def test_prompt_head_learns_a_rating_and_classes():
    X, y = rating_data(n=160)
    small = {"type": "prompt", "inputs": "pooled", "d_model": 24, "hidden": 32, "device": "cpu"}
    head = build_head({**small, "epochs": 20, "patience": 20}, RATING, seed=0).fit(X[:120], y[:120])
    P = head.predict(X[120:])
    assert np.corrcoef(P["mix"][:, 0], y[120:, 0])[0, 1] > 0.7
    labels = (X[:, 0] > 0.5).astype(int) + (X[:, 0] > -0.5)
    head = build_head({**small, "epochs": 15}, CLS, seed=0)
    P = head.fit(X[:120], labels[:120]).predict(X[120:])
    assert set(P) == {"main", "knn"}
    np.testing.assert_allclose(P["main"].sum(axis=1), 1.0)
    assert (P["main"].argmax(axis=1) == labels[120:]).mean() > 0.6


def test_prompt_head_rejects_unsupported_kinds_and_bad_width():
    with pytest.raises(ConfigError, match="prompt.*regression.*classification"):
        build_head({"type": "prompt"}, ML, seed=0)
    with pytest.raises(ConfigError, match=r"heads\.prompt\.d_model.*n_heads=6"):
        build_head({"type": "prompt", "d_model": 100}, RATING, seed=0)


def test_va_and_mlp_heads_fit_layers_inputs_deterministically():
    X, _ = rating_data()
    layers = np.stack([X, -X, X * 2], axis=1)  # (n, L=3, D)
    y = np.stack([X[:, 0], X[:, 1]], axis=1)
    va = {"type": "va", "inputs": "layers", **FAST}
    a = build_head(va, MULTI, seed=1).fit(layers, y).predict(layers)["main"]
    b = build_head(va, MULTI, seed=1).fit(layers, y).predict(layers)["main"]
    assert a.shape == (len(X), 2)
    np.testing.assert_array_equal(a, b)
    tags = (np.stack([X[:, 0], X[:, 1], X[:, 2]], axis=1) > 0).astype(np.float32)
    mlp = {"type": "mlp", "inputs": "sequence", "hidden": 16, **FAST}
    P = build_head(mlp, ML, seed=1).fit(sequences(X), tags).predict(sequences(X))["main"]
    assert P.shape == (len(X), 3) and ((P > 0) & (P < 1)).all()


def test_lgbm_optuna_search_never_sees_the_validation_rows(monkeypatch):
    X, y = rating_data(n=90)
    seen: list[int] = []
    original = LGBMHead._fit_models

    def spy(self, X_fit, y_fit, overrides, sample_weight=None):
        seen.append(len(X_fit))
        assert not (np.isin(X_fit[:, 0], X[60:, 0])).any(), "a validation row reached the search"
        return original(self, X_fit, y_fit, overrides, sample_weight)

    monkeypatch.setattr(LGBMHead, "_fit_models", spy)
    head = build_head(
        {"type": "lgbm", "n_trials": 2, "inner_folds": 3, "params": {"n_estimators": 20}}, RATING, seed=0
    ).fit(X[:60], y[:60])
    assert len(seen) == 2 * 3 + 1 and max(seen) == 60  # trials x inner folds, then the final fit
    assert head.best_params and head.predict(X[60:])["main"].shape == (30, 1)


@pytest.mark.parametrize("task", [RATING, CLS, ML])
def test_lgbm_is_deterministic_per_kind(task):
    X, y = rating_data(n=60)
    target = {
        "regression": y,
        "classification": (X[:, 0] > 0).astype(int) + (X[:, 1] > 1),
        "multilabel": (X[:, :3] > 0).astype(np.float32),
    }[task.kind]
    params = {"type": "lgbm", "params": {"n_estimators": 30}}
    a = build_head(params, task, seed=2).fit(X, target).predict(X)["main"]
    b = build_head(params, task, seed=2).fit(X, target).predict(X)["main"]
    np.testing.assert_array_equal(a, b)
    assert a.shape == (60, task.n_outputs)
    if task.kind == "classification":
        np.testing.assert_allclose(a.sum(axis=1), 1.0)


def test_logmel_keep_sequence_writes_frames_and_train_loads_what_the_head_declares(tmp_path):
    from audiofold.backbones import build_backbone
    from audiofold.embed import load_embeddings, pack_sequences
    from audiofold.errors import DataError
    from audiofold.io import save_npz

    backbone = build_backbone("logmel", {"type": "logmel", "n_mels": 16, "keep_sequence": True})
    crops = np.random.default_rng(0).normal(size=(2, 16000)).astype(np.float32)
    out = backbone.embed_outputs(crops)
    np.testing.assert_array_equal(out["X"], backbone.embed_batch(crops))
    assert [s.shape for s in out["seq"]] == [(51, 16), (51, 16)]  # 1 s at hop 320, centred frames
    seq, offsets = pack_sequences(out["seq"], backbone)
    save_npz(tmp_path / "with.npz", ids=np.array(["a", "b"]), X=out["X"], seq=seq, seq_offsets=offsets)
    save_npz(tmp_path / "without.npz", ids=np.array(["c"]), X=out["X"][:1])
    ids, frames = load_embeddings([tmp_path / "with.npz"], "sequence")
    assert ids == ["a", "b"] and frames[1].shape == (51, 16)
    with pytest.raises(DataError, match="keep_sequence: true"):
        load_embeddings([tmp_path / "without.npz"], "sequence")
    with pytest.raises(DataError, match="option `layer: all`"):
        load_embeddings([tmp_path / "without.npz"], "layers")
