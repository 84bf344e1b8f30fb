"""Training augmentation: per-crop rows (train_on_crops), mixup in embedding space, frame masking."""

import joblib
import numpy as np
import pytest
import torch

from audiofold.config import check_config_options
from audiofold.errors import ConfigError, DataError
from audiofold.heads import LinearHead, build_head
from audiofold.heads.knn import KNNHead
from audiofold.heads.mlp import MLPHead
from audiofold.heads.torch_base import mask_frames, pad_sequences
from audiofold.io import load_npz, read_json, save_npz
from audiofold.tasks import TaskSpec
from audiofold.train import train_fold

CLS = TaskSpec("classification", "id", ["y"], classes=["a", "b", "c"])
ML = TaskSpec("multilabel", "id", ["labels"], classes=["a", "b", "c"], label_sep=",")
RATING = TaskSpec("regression", "id", ["score"], scale={"min": 0.0, "max": 5.0, "step": 0.5})
K = 4  # crops per clip
FAST = {"epochs": 2, "batch_size": 16, "device": "cpu"}


def write_crop_shards(tmp_path, n=60, n_folds=3, keep_crops=True, seed=0):
    """Shards whose X is the mean of K noisy crops of a class-signal vector."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centre = rng.normal(size=(n, 1, 8)).astype(np.float32)
    centre[:, 0, 0] += 5 * y
    crops = (centre + rng.normal(size=(n, K, 8))).astype(np.float32)
    X = crops.mean(axis=1)
    folds = rng.permutation(np.arange(n) % n_folds)
    ids = np.array([f"c{i:03d}" for i in range(n)])
    shards = []
    for k in range(n_folds):
        shards.append(tmp_path / f"emb/fold{k}.npz")
        rows = np.flatnonzero(folds == k)[::-1]  # shard order differs from table order
        extra = {"X_crops": crops[rows]} if keep_crops else {}
        save_npz(shards[-1], ids=ids[rows], X=X[rows], **extra)
    test = tmp_path / "emb/test0.npz"
    save_npz(test, ids=np.array([f"t{i}" for i in range(9)]), X=rng.normal(size=(9, 8)).astype(np.float32))
    save_npz(tmp_path / "targets.npz", ids=ids, y=y, fold=folds)
    return shards, [test], folds, X, crops


def run_fold(tmp_path, shards, tests, head_params, fold=0, mode="folds"):
    return train_fold(
        train_shards=shards,
        test_shards=tests,
        targets_path=tmp_path / "targets.npz",
        task=CLS,
        fold=fold,
        head_params=head_params,
        seed=0,
        model_out=tmp_path / "m.joblib",
        preds_out=tmp_path / "p.npz",
        test_predictions=mode,
    )


# ---- train_on_crops ------------------------------------------------------------------------
def test_train_on_crops_fits_one_row_per_crop_and_predicts_on_the_crop_mean(tmp_path):
    shards, tests, folds, X, crops = write_crop_shards(tmp_path)
    n_train = int((folds != 0).sum())
    info = run_fold(tmp_path, shards, tests, {"type": "knn", "k": 3, "train_on_crops": True})
    head = joblib.load(tmp_path / "m.joblib")
    assert head.index.n_samples_fit_ == K * n_train == info["n_fit_rows"]
    assert info["n_train"] == n_train and info["head"]["train_on_crops"] is True
    # the fitted rows are the training clips' crops, not their means
    fitted = head.index._fit_X
    np.testing.assert_allclose(np.sort(fitted, axis=0), np.sort(crops[folds != 0].reshape(-1, 8), axis=0), rtol=1e-6)
    # validation rows are predicted from X (the TTA mean), in targets order
    table_ids = [str(i) for i in load_npz(tmp_path / "targets.npz")["ids"]]
    val = load_npz(tmp_path / "p.npz")
    rows = [table_ids.index(i) for i in val["val_ids"]]
    np.testing.assert_allclose(val["val__main"], head.predict(X[rows])["main"], rtol=1e-6)

    plain = run_fold(tmp_path, shards, tests, {"type": "knn", "k": 3})
    assert joblib.load(tmp_path / "m.joblib").index.n_samples_fit_ == n_train == plain["n_fit_rows"]
    assert "train_on_crops" not in plain["head"]


def test_train_on_crops_repeats_targets_and_keeps_a_clips_crops_in_one_group(tmp_path, monkeypatch):
    shards, tests, folds, _, _ = write_crop_shards(tmp_path)
    targets = load_npz(tmp_path / "targets.npz")
    seen = []
    fit = LinearHead.fit

    def spy(self, X, y, groups=None):
        seen.append((len(X), np.asarray(y).copy(), None if groups is None else np.asarray(groups).copy()))
        return fit(self, X, y, groups=groups)

    monkeypatch.setattr(LinearHead, "fit", spy)
    run_fold(tmp_path, shards, tests, {"type": "linear", "train_on_crops": True})
    train = np.flatnonzero(folds != 0)
    n_rows, y_seen, groups_seen = seen[-1]
    assert n_rows == K * len(train)
    np.testing.assert_array_equal(y_seen, np.repeat(targets["y"][train], K))
    # no group column: one group per clip, shared by its K crops
    per_clip = groups_seen.reshape(len(train), K)
    assert (per_clip == per_clip[:, :1]).all() and len(np.unique(per_clip[:, 0])) == len(train)

    speakers = np.array([f"s{i // 5}" for i in range(len(folds))])
    save_npz(tmp_path / "targets.npz", **targets, group=speakers)
    run_fold(tmp_path, shards, tests, {"type": "linear", "train_on_crops": True})
    np.testing.assert_array_equal(seen[-1][2], np.repeat(speakers[train], K))


SPY_FITS: list[int] = []


class SpyHead(KNNHead):
    """A kNN head that records how many rows each fit gets (registered under heads.spy by the test)."""

    type_name = "spy"

    def fit(self, X, y):
        SPY_FITS.append(len(X))
        return super().fit(X, y)


def test_nested_fold_average_trains_its_inner_models_on_crops_too(tmp_path, monkeypatch):
    from audiofold import heads

    monkeypatch.setitem(heads._HEAD_CLASSES, "spy", (__name__, "SpyHead"))
    shards, tests, folds, _, _ = write_crop_shards(tmp_path)
    SPY_FITS.clear()
    run_fold(tmp_path, shards, tests, {"type": "spy", "k": 3, "train_on_crops": True}, fold=0, mode="auto")
    sizes = {k: int((folds == k).sum()) for k in range(3)}
    assert SPY_FITS == [K * (sizes[1] + sizes[2]), K * sizes[2], K * sizes[1]]
    assert "nested__main" in load_npz(tmp_path / "p.npz")


def test_train_on_crops_without_kept_crops_names_the_backbone_option(tmp_path):
    shards, tests, _, _, _ = write_crop_shards(tmp_path, keep_crops=False)
    with pytest.raises(DataError, match=r"no 'X_crops'.*train_on_crops: true.*tta: \{keep_crops: true\}"):
        run_fold(tmp_path, shards, tests, {"type": "knn", "train_on_crops": True})
    assert not (tmp_path / "p.npz").exists()


def test_train_on_crops_is_validated_and_known_to_every_head_type():
    with pytest.raises(ConfigError, match=r"heads\.knn\.train_on_crops: must be true or false"):
        build_head({"type": "knn", "train_on_crops": "yes"}, CLS, seed=0)
    with pytest.raises(ConfigError, match=r"heads\.p\.train_on_crops: needs inputs: pooled.*inputs: sequence"):
        build_head({"type": "prompt", "train_on_crops": True}, CLS, seed=0, name="p")
    heads = {t: {"type": t, "train_on_crops": True} for t in ("linear", "knn", "lgbm")}
    heads["mlp"] = {"type": "mlp", "train_on_crops": True}
    check_config_options({"backbones": {}, "heads": heads})  # no "unknown option"
    for params, task in ((heads["lgbm"], CLS), (heads["mlp"], ML), ({"type": "va", "train_on_crops": True}, None)):
        task = task or TaskSpec("multitarget", "id", ["v", "a"])
        assert build_head(params, task, seed=0).train_on_crops is True


# ---- groups in the inner splits ------------------------------------------------------------
def test_torch_inner_split_keeps_groups_on_one_side():
    head = build_head({"type": "prompt", "inputs": "pooled", **FAST}, CLS, seed=0)
    y = np.arange(80) % 3
    groups = np.repeat(np.arange(20), 4)  # e.g. a clip's four crops
    fit_idx, val_idx = head.inner_split(y, groups)
    assert not set(groups[fit_idx]) & set(groups[val_idx])
    assert len(fit_idx) + len(val_idx) == 80 and 0 < len(val_idx) < 40
    plain_fit, plain_val = head.inner_split(y, None)
    assert set(groups[plain_fit]) & set(groups[plain_val])  # without groups crops of a clip straddle


def test_lgbm_inner_search_keeps_groups_on_one_side(monkeypatch):
    from audiofold.heads.lgbm import LGBMHead

    seen = []
    fit_models = LGBMHead._fit_models

    def spy(self, X, y, overrides, sample_weight=None):
        seen.append(X[:, 0].copy())
        return fit_models(self, X, y, overrides, sample_weight)

    monkeypatch.setattr(LGBMHead, "_fit_models", spy)
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 3)
    X = np.column_stack([groups.astype(float), rng.normal(size=90)])  # column 0 names the group
    y = groups % 3
    head = build_head({"type": "lgbm", "n_trials": 1, "params": {"n_estimators": 5}}, CLS, seed=0)
    head.fit(X, y, groups=groups)
    assert len(seen) == 4  # three inner-CV fits, then the final fit on every row
    for inner_fit in seen[:-1]:
        fitted, count = np.unique(inner_fit, return_counts=True)
        assert (count == 3).all() and len(fitted) < 30  # some groups held out, each whole


# ---- mixup -----------------------------------------------------------------------------------
class SpyMLP(MLPHead):
    """MLPHead recording the input batches its module sees in training mode."""

    def build_module(self, frame_shape):
        module = super().build_module(frame_shape)
        self.batches = []
        module.register_forward_pre_hook(
            lambda mod, args: self.batches.append(args[0].detach().clone()) if mod.training else None
        )
        return module


def tags_data(n=64, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    return X, (X[:, :3] > 0).astype(np.float32)


def spy_fit(seed=0, **options):
    X, tags = tags_data()
    head = SpyMLP(ML, seed, hidden=8, epochs=2, batch_size=16, device="cpu", **options)
    return head.fit(X, tags), X


def test_mixup_mixes_rows_within_each_batch_deterministically():
    plain, X = spy_fit()
    rows = {tuple(r) for r in X.tolist()}
    assert all(tuple(r) in rows for b in plain.batches for r in b.tolist())  # off: raw rows only

    # alpha 8: lam near 0.5, so a row stays raw only where the permutation pairs it with itself
    mixed, _ = spy_fit(mixup_alpha=8.0, mixup_prob=1.0)
    assert len(mixed.batches) == len(plain.batches)
    kept = sum(tuple(r) in rows for b in mixed.batches for r in b.tolist())
    assert kept < 0.3 * len(X)
    for raw, mix in zip(plain.batches, mixed.batches):
        # pairs come from the same batch (same shuffling as without mixup): the batch mean is kept
        torch.testing.assert_close(mix.mean(dim=0), raw.mean(dim=0), rtol=1e-5, atol=1e-5)
    mixed, _ = spy_fit(mixup_alpha=0.4, mixup_prob=1.0)
    again, _ = spy_fit(mixup_alpha=0.4, mixup_prob=1.0)
    for a, b in zip(mixed.batches, again.batches):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    other, _ = spy_fit(seed=1, mixup_alpha=0.4, mixup_prob=1.0)
    assert not torch.equal(other.batches[0], mixed.batches[0])

    never, _ = spy_fit(mixup_alpha=0.4, mixup_prob=0.0)
    for a, b in zip(plain.batches, never.batches):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    half, _ = spy_fit(mixup_alpha=0.4, mixup_prob=0.5)
    clean = [all(tuple(r) in rows for r in b.tolist()) for b in half.batches]
    assert any(clean) and not all(clean)


def test_mixed_loss_is_the_loss_of_the_linearly_mixed_targets():
    X, tags = tags_data()
    head = build_head({"type": "mlp", "hidden": 8, **FAST}, ML, seed=0)
    head.prepare_targets(tags)
    out = torch.randn(8, 3)
    ya, yb = torch.from_numpy(tags[:8]), torch.from_numpy(tags[8:16])
    lam = 0.3
    mixed_target = head.loss(out, lam * ya + (1 - lam) * yb)
    torch.testing.assert_close(mixed_target, lam * head.loss(out, ya) + (1 - lam) * head.loss(out, yb))


@pytest.mark.parametrize("task", [RATING, CLS], ids=["rating", "classes"])
def test_prompt_head_trains_with_mixup_deterministically(task):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 6)).astype(np.float32)
    y = (np.clip(np.round(2.5 + X[:, :1], 0), 0, 5)) if task is RATING else (X[:, 0] > 0).astype(int)
    params = {"type": "prompt", "inputs": "pooled", "d_model": 12, "n_heads": 6, "hidden": 16, **FAST}
    on = {**params, "mixup_alpha": 0.4, "mixup_prob": 1.0}
    a = build_head(on, task, seed=3).fit(X, y)
    b = build_head(on, task, seed=3).fit(X, y)
    off = build_head(params, task, seed=3).fit(X, y)
    assert a.history == b.history and a.history != off.history
    for variant, P in a.predict(X).items():
        np.testing.assert_array_equal(P, b.predict(X)[variant])
        assert np.isfinite(P).all()


# ---- frame masking ---------------------------------------------------------------------------
def runs(flags):
    """Lengths of the runs of True in a 1-d bool array."""
    edges = np.diff(np.concatenate([[0], flags.astype(int), [0]]))
    return (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).tolist()


def test_mask_frames_zeros_short_spans_and_bands_inside_the_real_frames():
    lengths, dim = [40, 12, 1], 10
    x, mask = pad_sequences([np.ones((n, dim), np.float32) for n in lengths])
    original = x.clone()
    rng = np.random.default_rng(0)
    seen_time = seen_band = False
    for _ in range(50):
        out = mask_frames(x, mask, rng, time_masks=2, time_mask_frac=0.1, feature_masks=2, feature_mask_width=3)
        assert torch.equal(x, original)  # the input batch is not modified
        for row, n in enumerate(lengths):
            real = out[row, :n].numpy()
            assert (out[row, n:] == 0).all() and set(np.unique(real)) <= {0.0, 1.0}
            hidden_frames = (real == 0).all(axis=1)
            bands = (real == 0).all(axis=0)
            # a zero is either a hidden frame or a hidden band
            assert ((real == 0) == (hidden_frames[:, None] | bands[None, :])).all()
            # two spans (they may touch or overlap) of at most 10 % of the frames; two bands of <= 3 dims
            assert len(runs(hidden_frames)) <= 2 and hidden_frames.sum() <= 2 * int(0.1 * n)
            assert len(runs(bands)) <= 2 and bands.sum() <= 2 * 3
            assert not hidden_frames.all() and not bands.all()
            seen_time |= hidden_frames.any()
            seen_band |= bands.any()
    assert seen_time and seen_band


def test_mask_frames_never_hides_a_whole_clip():
    x, mask = pad_sequences([np.ones((n, 3), np.float32) for n in (2, 3, 4)])
    rng = np.random.default_rng(1)
    for _ in range(300):  # wide masks: two of them would often cover a short clip
        out = mask_frames(x, mask, rng, time_masks=2, time_mask_frac=0.9, feature_masks=2, feature_mask_width=3)
        for row, n in enumerate((2, 3, 4)):
            real = out[row, :n]
            assert (real != 0).any(dim=1).any() and (real != 0).any(dim=0).any()


def test_sequence_masks_apply_in_training_only():
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(int(rng.integers(10, 20)), 6)).astype(np.float32) for _ in range(48)]
    tags = (np.stack([s.mean(axis=0)[:3] for s in seqs]) > 0).astype(np.float32)
    options = {"inputs": "sequence", "hidden": 8, "epochs": 2, "batch_size": 16, "device": "cpu"}
    head = SpyMLP(ML, 0, time_masks=2, time_mask_frac=0.2, feature_masks=2, feature_mask_width=2, **options)
    head.fit(seqs, tags)
    zero_frames = sum(int(((b == 0).all(dim=-1)).sum()) for b in head.batches)
    plain = SpyMLP(ML, 0, **options).fit(seqs, tags)
    plain_zero = sum(int(((b == 0).all(dim=-1)).sum()) for b in plain.batches)  # padding only
    assert zero_frames > plain_zero
    head.batches.clear()
    P = head.predict(seqs)["main"]
    assert head.batches == []  # predict runs the module in eval mode, never through augment
    x, mask = pad_sequences(seqs)
    with torch.no_grad():
        expected = torch.sigmoid(head.module.eval()(x, mask)).numpy()
    np.testing.assert_allclose(P, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"mixup_alpha": -0.1}, "mixup_alpha"),
        ({"mixup_alpha": "0.4"}, "mixup_alpha"),
        ({"mixup_prob": 1.5}, "mixup_prob"),
        ({"time_masks": -1, "inputs": "sequence"}, "time_masks"),
        ({"time_masks": 2, "inputs": "pooled"}, "time_masks"),
        ({"feature_masks": 1.5, "inputs": "sequence"}, "feature_masks"),
        ({"time_mask_frac": 1.0}, "time_mask_frac"),
        ({"feature_mask_width": 0}, "feature_mask_width"),
    ],
)
def test_bad_augmentation_options_name_the_key(params, key):
    for head_type, task in (("mlp", ML), ("prompt", CLS)):
        with pytest.raises(ConfigError, match=rf"heads\.{head_type}\.{key}: must|heads\.{head_type}\.{key}: masks"):
            build_head({"type": head_type, **params}, task, seed=0)


def test_augmentation_is_recorded_in_the_fold_metadata(tmp_path):
    shards, tests, _, _, _ = write_crop_shards(tmp_path)
    run_fold(tmp_path, shards, tests, {"type": "prompt", "inputs": "pooled", "mixup_alpha": 0.4, **FAST})
    assert read_json(tmp_path / "p.meta.json")["head"]["params"]["mixup_alpha"] == 0.4
