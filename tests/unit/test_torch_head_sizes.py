"""Torch heads on any training size: finite predictions, never a NaN best epoch, and a train step
that fails (naming head, backbone and fold) instead of handing NaN to calibrate/blend."""

import numpy as np
import pytest
import torch

from audiofold.errors import TrainingError
from audiofold.heads import build_head
from audiofold.heads.va import VAHead
from audiofold.io import save_npz
from audiofold.tasks import TaskSpec
from audiofold.train import train_fold

RATING = TaskSpec("regression", "id", ["score"], scale={"min": 0.0, "max": 5.0, "step": 0.5})
MULTI = TaskSpec("multitarget", "id", ["valence", "arousal"])
CLS = TaskSpec("classification", "id", ["label"], classes=["a", "b", "c"])
ML = TaskSpec("multilabel", "id", ["labels"], classes=["a", "b", "c"], label_sep=",")

TINY = {"epochs": 1, "batch_size": 8, "device": "cpu"}
# every torch head x every kind it supports, each on one of its input forms
CASES = {
    "prompt-regression-sequence": ({"type": "prompt", "d_model": 6, "n_heads": 2, "hidden": 8, "n_prompts": 2}, RATING),
    "prompt-classification-pooled": (
        {"type": "prompt", "inputs": "pooled", "d_model": 6, "n_heads": 2, "hidden": 8, "n_prompts": 2},
        CLS,
    ),
    "va-regression-pooled": ({"type": "va", "hidden": 8}, RATING),
    "va-multitarget-layers": ({"type": "va", "hidden": 8, "inputs": "layers"}, MULTI),
    "mlp-multilabel-sequence": ({"type": "mlp", "hidden": 8, "inputs": "sequence"}, ML),
}


@pytest.fixture
def one_thread():
    # hundreds of fits on tiny tensors: torch's thread pool costs more than it saves (10x on a busy CPU)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_data(params, task, n, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = {
        "regression": np.clip(np.round((2.5 + X[:, :1]) * 2) / 2, 0, 5),
        "multitarget": X[:, :2] + 0.1 * rng.normal(size=(n, 2)),
        "classification": (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5),
        "multilabel": (X[:, :3] > 0).astype(np.float32),
    }[task.kind]
    inputs = params.get("inputs", "sequence" if params["type"] == "prompt" else "pooled")
    if inputs == "sequence":
        X = [x + 0.1 * rng.normal(size=(int(rng.integers(1, 4)), d)).astype(np.float32) for x in X]
    elif inputs == "layers":
        X = np.stack([X, -X], axis=1)
    return X, y


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_torch_head_predicts_finite_values_for_every_training_size(case, one_thread):
    # Sizes 2-100 at batch_size 8 give every inner-fit size mod 8 (a last batch of 1 included)
    # and inner-fit sets smaller than one batch; one epoch suffices, as a NaN loss poisons the weights.
    params, task = CASES[case]
    bad = {}
    for n in range(2, 101):
        X, y = make_data(params, task, n, seed=n)
        try:
            P = build_head({**params, **TINY}, task, seed=0).fit(X, y).predict(X)
        except TrainingError as exc:
            bad[n] = str(exc)
            continue
        if not all(np.isfinite(v).all() for v in P.values()):
            bad[n] = "non-finite predictions"
    assert not bad, f"{case}: training sizes {sorted(bad)} failed, e.g. {next(iter(bad.values()), '')}"


def test_va_head_with_a_last_batch_of_one_row_trains_with_finite_loss():
    # 48 rows -> 40 inner-fit rows (inner_val_fraction 0.15), so batch_size 39 leaves a last batch of one
    X, y = make_data({"type": "va"}, MULTI, 48)
    head = build_head(
        {"type": "va", "hidden": 16, "epochs": 4, "patience": 4, "batch_size": 39, "device": "cpu"}, MULTI, seed=0
    ).fit(X, y)
    assert len(head.history) == 4
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["score"]) for r in head.history)
    assert np.isfinite(head.predict(X)["main"]).all()


def test_a_non_finite_epoch_is_never_kept_as_best(monkeypatch):
    # The first epoch scores NaN (as a NaN model would); the best epoch must be a later, finite one.
    original = VAHead.inner_metrics

    def first_epoch_nan(self, variants, y):
        metrics = original(self, variants, y)
        return {**metrics, "score": float("nan")} if not self.history else metrics

    monkeypatch.setattr(VAHead, "inner_metrics", first_epoch_nan)
    X, y = make_data({"type": "va"}, MULTI, 60)
    head = build_head({"type": "va", "hidden": 16, "epochs": 3, "patience": 3, "device": "cpu"}, MULTI, seed=0).fit(
        X, y
    )
    assert np.isnan(head.history[0]["score"]) and head.best_epoch in (2, 3)
    assert head.history[head.best_epoch - 1]["score"] == min(r["score"] for r in head.history[1:])


def test_no_finite_epoch_fails_clearly_after_patience():
    X, y = make_data({"type": "va"}, MULTI, 60)
    X[3, 0] = np.nan  # one NaN embedding poisons the weights on the first step
    head = build_head({"type": "va", "hidden": 16, "epochs": 10, "patience": 2, "device": "cpu"}, MULTI, seed=0)
    with pytest.raises(TrainingError, match=r"head va \(seed 0\): no epoch of 2 gave a finite training loss"):
        head.fit(X, y)


def write_fold_data(tmp_path, X, y, X_test):
    n = len(X)
    ids = np.array([f"c{i:03d}" for i in range(n)])
    save_npz(tmp_path / "emb/train.npz", ids=ids, X=X)
    save_npz(tmp_path / "emb/test.npz", ids=np.array([f"t{i}" for i in range(len(X_test))]), X=X_test)
    save_npz(tmp_path / "targets.npz", ids=ids, y=y, fold=np.arange(n) % 3)


@pytest.mark.parametrize("poisoned", ["train", "test"])
def test_train_step_fails_naming_head_backbone_and_fold_on_non_finite_predictions(poisoned, tmp_path):
    X, y = make_data({"type": "va"}, MULTI, 60)
    X_test = np.random.default_rng(1).normal(size=(6, X.shape[1])).astype(np.float32)
    if poisoned == "train":
        X[3, 1] = np.inf  # fold 0: a training row of fold 1
    else:
        X_test[4, 1] = np.inf
    write_fold_data(tmp_path, X, y, X_test)
    expected = {"train": "no epoch .* gave a finite training loss", "test": "'main' predicts non-finite .* 1 of 6 test"}
    with pytest.raises(TrainingError, match=rf"head 'arousal_va' on backbone 'logmel', fold 1: .*{expected[poisoned]}"):
        train_fold(
            train_shards=[tmp_path / "emb/train.npz"],
            test_shards=[tmp_path / "emb/test.npz"],
            targets_path=tmp_path / "targets.npz",
            task=MULTI,
            fold=1,
            backbone="logmel",
            head_params={"type": "va", "hidden": 16, "epochs": 2, "device": "cpu"},
            head_name="arousal_va",
            seed=0,
            model_out=tmp_path / "m.joblib",
            preds_out=tmp_path / "p.npz",
        )
    assert not (tmp_path / "p.npz").exists() and not (tmp_path / "m.joblib").exists()
