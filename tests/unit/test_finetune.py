"""Fine-tuning a pretrained encoder per fold (audiofold.finetune) on tiny synthetic audio, on the CPU."""

import pickle

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofold import finetune
from audiofold.audio import load_mono
from audiofold.audio_store import AudioStores, audio_store, waves_path
from audiofold.errors import ConfigError, TrainingError
from audiofold.finetune import CropDataset, FinetuneOptions, finetune_fold
from audiofold.finetune_encoders import build_encoder, encoder_sample_rate
from audiofold.io import load_npz, meta_path, read_json, save_npz
from audiofold.tasks import TaskSpec

SR = 8000
TINY = {"type": "cnn", "sample_rate": SR, "n_mels": 16, "n_fft": 256, "hop": 128, "channels": [4, 8]}
CLASSES = ["a", "b", "c"]


def _options(**overrides) -> FinetuneOptions:
    params = dict(
        encoder=TINY, epochs=2, patience=5, batch_size=8, crop_seconds=0.5, tta_crops=2, lr_head=3e-3, lr_encoder=1e-3
    )
    return FinetuneOptions.from_config({**params, **overrides})


def _task(kind: str, scale: dict | None = None) -> TaskSpec:
    if kind in ("classification", "multilabel"):
        return TaskSpec(kind=kind, id_column="id", label_columns=["label"], classes=CLASSES)
    columns = ["rating"] if kind == "regression" else ["valence", "arousal"]
    return TaskSpec(kind=kind, id_column="id", label_columns=columns, scale=scale)


def _data(root, kind: str, n: int = 24, n_test: int = 6):
    """Clips whose pitch follows the label, their stores, targets (3 folds) and the task."""
    rng = np.random.default_rng(0)
    label = np.arange(n) % 3
    rows, test_rows = [], []
    for i in range(n + n_test):
        cls = label[i] if i < n else i % 3
        seconds = rng.uniform(0.3, 0.9)
        t = np.arange(int(seconds * SR)) / SR
        wave = 0.3 * np.sin(2 * np.pi * (300 + 400 * cls) * t) + 0.01 * rng.standard_normal(len(t))
        path = root / "wav" / f"c{i:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, wave.astype(np.float32), SR)
        (rows if i < n else test_rows).append((f"c{i:03d}", str(path), "decode"))
    stores = root / "audio"
    audio_store(rows, SR, stores / "train0.f32", stores / "train0.npz", max_seconds=None)
    audio_store(test_rows, SR, stores / "test0.f32", stores / "test0.npz", max_seconds=None)
    if kind == "classification":
        y = label
    elif kind == "multilabel":
        y = np.eye(3, dtype=np.float32)[label]
        y[::4, (label[::4] + 1) % 3] = 1.0
    elif kind == "regression":
        y = label[:, None].astype(np.float64) + 0.1 * rng.standard_normal((n, 1))
    else:
        y = np.stack([label, -label], axis=1).astype(np.float64)
    ids = np.array([r[0] for r in rows], dtype=str)
    save_npz(root / "targets.npz", ids=ids, y=y, fold=np.arange(n) % 3)
    return [stores / "train0.npz"], [stores / "test0.npz"], root / "targets.npz", _task(kind)


def _run(root, data, fold=0, options=None, seed=0, **kwargs):
    train, test, targets, task = data
    return finetune_fold(
        model_name="tiny",
        options=options or _options(),
        train_stores=train,
        test_stores=test,
        targets_path=targets,
        task=task,
        fold=fold,
        seed=seed,
        preds_out=root / "preds.npz",
        model_out=root / "model.pt",
        history_out=root / "history.csv",
        checkpoint_dir=root / "ckpt",
        **kwargs,
    )


@pytest.mark.parametrize("kind", ["classification", "multilabel", "regression", "multitarget"])
def test_every_task_kind_gives_finite_predictions_in_the_train_contract(tmp_path, kind):
    data = _data(tmp_path, kind)
    info = _run(tmp_path, data)
    preds = load_npz(tmp_path / "preds.npz")
    n_out = 2 if kind == "multitarget" else 1 if kind == "regression" else 3
    assert preds["val__main"].shape == (8, n_out) and preds["test__main"].shape == (6, n_out)
    assert np.isfinite(preds["val__main"]).all() and np.isfinite(preds["test__main"]).all()
    assert list(preds["val_ids"]) == [f"c{i:03d}" for i in range(0, 24, 3)]
    if kind == "classification":
        np.testing.assert_allclose(preds["test__main"].sum(axis=1), 1.0, rtol=1e-5)
    assert info["epochs_run"] == 2 and 1 <= info["best_epoch"] <= 2
    assert read_json(meta_path(tmp_path / "preds.npz"))["history"][0]["epoch"] == 1
    assert (tmp_path / "history.csv").read_text().startswith("epoch,train_loss")
    assert not (tmp_path / "ckpt" / "last.pt").exists()  # a finished job leaves no checkpoint


def test_a_killed_job_resumes_and_ends_with_the_same_predictions(tmp_path, caplog):
    options = _options(epochs=3, patience=10)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir(), parts.mkdir()
    _run(whole, _data(whole, "classification"), options=options)
    data = _data(parts, "classification")
    with pytest.raises(finetune.Interrupted):
        _run(parts, data, options=options, stop_after=1)
    assert (parts / "ckpt" / "last.pt").is_file() and not (parts / "preds.npz").exists()
    saved = torch.load(parts / "ckpt" / "last.pt", weights_only=False)
    assert saved["state"]["epoch"] == 1
    with caplog.at_level("INFO", logger="audiofold.finetune"):
        info = _run(parts, data, options=options)
    assert "resuming after epoch 1" in caplog.text
    assert [h["epoch"] for h in info["history"]] == [1, 2, 3]
    a, b = load_npz(whole / "preds.npz"), load_npz(parts / "preds.npz")
    np.testing.assert_array_equal(a["val__main"], b["val__main"])
    np.testing.assert_array_equal(a["test__main"], b["test__main"])


def test_a_checkpoint_of_other_settings_is_not_resumed(tmp_path, caplog):
    data = _data(tmp_path, "regression")
    with pytest.raises(finetune.Interrupted):
        _run(tmp_path, data, options=_options(epochs=3), stop_after=1)
    with caplog.at_level("INFO", logger="audiofold.finetune"):
        info = _run(tmp_path, data, options=_options(epochs=3, lr_head=1e-3))
    assert "starting afresh" in caplog.text and "resuming" not in caplog.text
    assert [h["epoch"] for h in info["history"]] == [1, 2, 3]


def test_same_seed_same_predictions_other_seed_others(tmp_path):
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        root = tmp_path / name
        root.mkdir()
        _run(root, _data(root, "multilabel"), seed=seed, options=_options(balanced_sampler=True))
        runs[name] = load_npz(root / "preds.npz")["test__main"]
    np.testing.assert_array_equal(runs["a"], runs["b"])
    assert not np.allclose(runs["a"], runs["c"])


def test_workers_do_not_change_the_predictions(tmp_path):
    data = _data(tmp_path, "regression")
    _run(tmp_path, data, options=_options(epochs=1))
    single = load_npz(tmp_path / "preds.npz")["test__main"]
    _run(tmp_path, data, options=_options(epochs=1, num_workers=2))
    np.testing.assert_array_equal(single, load_npz(tmp_path / "preds.npz")["test__main"])


def test_refit_trains_on_every_row_and_predicts_the_test_set_only(tmp_path):
    data = _data(tmp_path, "classification")
    info = _run(tmp_path, data, fold=None, epochs=1)
    preds = load_npz(tmp_path / "preds.npz")
    assert info["n_train"] == 24 and info["epochs_run"] == 1 and len(preds["val_ids"]) == 0
    assert "val__main" not in preds and preds["test__main"].shape == (6, 3)


def test_validation_fold_stops_on_the_fold_rows(tmp_path):
    data = _data(tmp_path, "classification")
    inner = _run(tmp_path, data, options=_options(epochs=1))
    fold = _run(tmp_path, data, options=_options(epochs=1, validation="fold"))
    assert inner["n_fit"] < 16 and inner["n_early_stopping"] == 16 - inner["n_fit"]
    assert fold["n_fit"] == 16 and fold["n_early_stopping"] == 8


def test_non_finite_loss_names_model_fold_and_epoch(tmp_path):
    data = _data(tmp_path, "regression")
    waves = tmp_path / "audio" / "train0.f32"
    samples = np.fromfile(waves, dtype="<f4")
    samples[:] = np.nan  # a store gone bad (load_mono itself refuses NaN audio)
    samples.tofile(waves)
    with pytest.raises(TrainingError, match=r"finetune model 'tiny', fold 1, epoch 1: non-finite training loss"):
        _run(tmp_path, data, fold=1)


@pytest.mark.parametrize(
    ("unfreeze", "changed"), [("none", []), (1, ["convs.1"]), ("all", ["bn0", "convs.0", "convs.1"])]
)
def test_unfreeze_trains_only_the_last_blocks(tmp_path, unfreeze, changed):
    data = _data(tmp_path, "classification")
    info = _run(tmp_path, data, options=_options(epochs=1, unfreeze=unfreeze))
    trained = torch.load(tmp_path / "model.pt", weights_only=False)["state"]
    torch.manual_seed(0)  # the seed finetune_fold builds the model with
    fresh = build_encoder(TINY).state_dict()
    moved = sorted(
        {
            ".".join(k.split(".")[:2]) if k.startswith("convs") else k.split(".")[0]
            for k, v in fresh.items()
            if v.dtype.is_floating_point and not torch.equal(v, trained[f"encoder.{k}"])
        }
    )
    assert moved == changed
    assert (info["trainable_encoder_parameters"] == 0) == (unfreeze == "none")


def test_crop_dataset_reads_one_crop_per_item_and_holds_no_audio(tmp_path, monkeypatch):
    _data(tmp_path, "classification", n=60)
    stores = AudioStores([tmp_path / "audio" / "train0.npz"], SR)
    reads = []
    original = AudioStores.read

    def counting(self, row, start=0, count=None):
        out = original(self, row, start, count)
        reads.append(len(out))
        return out

    monkeypatch.setattr(AudioStores, "read", counting)
    options = _options()
    crop = int(options.crop_seconds * SR)
    small = CropDataset(stores, np.arange(6), crop, options, seed=0)
    large = CropDataset(stores, np.arange(60), crop, options, seed=0)
    # its pickled size (what each DataLoader worker receives) grows by row numbers, not audio
    assert len(pickle.dumps(large)) - len(pickle.dumps(small)) < 54 * 8 * 8
    waves = [large[i][0] for i in range(5)]
    assert len(reads) == 5 and max(reads) <= crop and all(len(w) == crop for w in waves)
    large.epoch = 1
    assert not np.array_equal(large[0][0], waves[0])  # a new crop and gain each epoch


def test_audio_store_holds_what_load_mono_decodes(tmp_path):
    data = _data(tmp_path, "classification", n=6, n_test=0)
    del data
    rows = [
        (f"c{i:03d}", str(tmp_path / "wav" / f"c{i:03d}.wav"), a) for i, a in enumerate(["decode", "skip", "zeros"])
    ]
    audio_store(rows, 16000, tmp_path / "s" / "x.f32", tmp_path / "s" / "x.npz", max_seconds=0.5)
    stores = AudioStores([tmp_path / "s" / "x.npz"], 16000)
    assert stores.ids == ["c000", "c002"]
    np.testing.assert_array_equal(stores.read(0), load_mono(rows[0][1], 16000, 0.5))
    assert stores.read(1).shape == (16000,) and not stores.read(1).any()  # ZERO_FILL_SECONDS of silence
    np.testing.assert_array_equal(stores.read(0, 100, 50), load_mono(rows[0][1], 16000, 0.5)[100:150])
    with pytest.raises(Exception, match="44100 Hz was asked for"):
        AudioStores([tmp_path / "s" / "x.npz"], 44100)
    assert waves_path(tmp_path / "s" / "x.npz").name == "x.f32"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"unfreeze": "some"}, "unfreeze"),
        ({"lr_head": 0}, "lr_head"),
        ({"device": "tpu"}, "device"),
        ({"mixup_prob": 2}, "mixup_prob"),
        ({"encoder": {"type": "cnn", "n_mel": 3}}, "encoder.n_mel"),
        ({"encoder": {"type": "vit"}}, "encoder.type"),
        ({"lr": 1e-3}, "lr"),
        ({"rating_loss": "huber"}, "rating_loss"),
        ({"ldl_sigma": 0}, "ldl_sigma"),
        ({"ldl_bins": 1}, "ldl_bins"),
    ],
)
def test_bad_options_name_their_key(change, key):
    with pytest.raises(ConfigError, match=rf"finetune\.m\.{key}"):
        FinetuneOptions.from_config({"encoder": TINY, **change}, "finetune.m")


def test_aisfx_encoder_runs_the_packaged_cnn_with_gradients():
    pytest.importorskip("aisfx", reason="aisfx ships with `make install` (requirements/packaged-weights.txt)")
    encoder = build_encoder({"type": "aisfx"})
    assert encoder_sample_rate({"type": "aisfx"}) == 44100 and len(encoder.blocks()) == 4
    model = finetune.FinetuneModel(encoder, 3, 0.5)
    assert model.freeze(1) == sum(p.numel() for p in encoder.blocks()[-1].parameters())
    waves = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 44100)).astype(np.float32))
    feats = encoder.features(waves)
    assert feats.shape[2] == 96
    out = model(feats)
    out.sum().backward()
    assert out.shape == (2, 3) and encoder.blocks()[-1].conv1.weight.grad is not None
    assert encoder.blocks()[0].conv1.weight.grad is None


def test_torchaudio_encoder_fine_tunes_a_checkpoint(tmp_path):
    from audiofold.backbones.torchaudio_ssl import save_random_checkpoint, tiny_arch

    checkpoint = save_random_checkpoint("wav2vec2_base", tmp_path / "w2v.pt", tiny_arch())
    params = {"type": "torchaudio", "bundle": "wav2vec2_base", "checkpoint": str(checkpoint), "arch": tiny_arch()}
    encoder = build_encoder(params)
    assert encoder_sample_rate(params) == 16000 and not encoder.spectrogram
    model = finetune.FinetuneModel(encoder, 2, 0.1)
    model.freeze(1)
    out = model(encoder.features(torch.zeros(2, 8000)))
    out.sum().backward()
    last = encoder.blocks()[-1]
    assert out.shape == (2, 2) and all(p.grad is not None for p in last.parameters() if p.requires_grad)
    assert all(p.grad is None for p in encoder.blocks()[0].parameters())


def test_refit_runs_the_folds_median_best_epoch(tmp_path):
    from audiofold.io import write_meta

    paths = []
    for fold, best in enumerate([2, 5, 3]):
        paths.append(tmp_path / f"fold{fold}.npz")
        write_meta(paths[-1], best_epoch=best)
    assert finetune.refit_epochs(paths) == 3


def test_learning_curves_plot_every_model_and_fold(tmp_path):
    from audiofold.finetune_curves import finetune_curves

    histories = {}
    for model in ("a", "b"):
        for fold in range(2):
            path = tmp_path / model / f"fold{fold}.csv"
            path.parent.mkdir(exist_ok=True)
            path.write_text("epoch,train_loss,lr_head,val_accuracy,seconds\n1,1.5,0.1,0.4,2\n2,1.2,0.0,0.5,2\n")
            histories.setdefault(model, []).append(path)
    summary = finetune_curves(histories, tmp_path / "curves.png")
    assert summary == {"a": {"fold0": 2, "fold1": 2}, "b": {"fold0": 2, "fold1": 2}}
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_panns_encoder_loads_a_cnn14_checkpoint_and_unfreezes_its_last_blocks(tmp_path):
    from audiofold.backbones.panns import build_cnn14

    torch.manual_seed(0)
    torch.save({"model": build_cnn14().state_dict()}, tmp_path / "cnn14.pth")
    params = {"type": "panns", "variant": "cnn14_16k", "checkpoint": str(tmp_path / "cnn14.pth")}
    encoder = build_encoder(params)
    assert encoder_sample_rate(params) == 16000 and encoder.dim == 2048 and len(encoder.blocks()) == 7
    model = finetune.FinetuneModel(encoder, 4, 0.5)
    assert model.freeze(2) == sum(p.numel() for b in encoder.blocks()[-2:] for p in b.parameters())
    out = model(encoder.features(torch.zeros(2, 16000)))
    assert out.shape == (2, 4)


# ---- rating_loss: ldl (label distribution learning) ---------------------------------------------
@pytest.mark.parametrize(
    ("kind", "scale", "grid"),
    [("regression", {"min": -1.0, "max": 3.0, "step": 0.5}, (1, 9)), ("multitarget", None, (2, 21))],
    ids=["regression on its scale's grid", "multitarget without a scale: 21 bins per target"],
)
def test_ldl_predicts_the_expectation_inside_the_rating_grid(tmp_path, kind, scale, grid):
    train, test, targets, _ = _data(tmp_path, kind)
    _run(tmp_path, (train, test, targets, _task(kind, scale)), options=_options(rating_loss="ldl"))
    preds = load_npz(tmp_path / "preds.npz")
    values = torch.load(tmp_path / "model.pt", weights_only=False)["objective"]["values"]
    assert values.shape == grid
    n_targets = grid[0]
    assert preds["val__main"].shape == (8, n_targets) and preds["test__main"].shape == (6, n_targets)
    for P in (preds["val__main"], preds["test__main"]):
        assert np.isfinite(P).all()
        assert (P >= values.min(axis=1) - 1e-6).all() and (P <= values.max(axis=1) + 1e-6).all()
    if kind == "multitarget":  # each target's range on the fit rows (fold 0 holds every label-0 clip)
        np.testing.assert_allclose(values[:, [0, -1]], [[1, 2], [-2, -1]], atol=1e-6)


@pytest.mark.parametrize("mse_weight", [0.0, 0.78])
def test_ldl_loss_is_least_when_the_distribution_peaks_at_the_true_bin(mse_weight):
    task = _task("regression", {"min": 0.0, "max": 5.0, "step": 0.5})
    options = _options(rating_loss="ldl", ldl_mse_weight=mse_weight)
    objective = finetune.Objective(task, options, np.array([[1.0], [4.0]]))
    grid = objective.values[0]
    assert objective.n_out == 11 and grid[5] == 2.5
    y = objective.targets(np.array([[2.5]]))
    # logits of a Gaussian centred on each grid value in turn; the true one is the target distribution
    losses = [
        float(objective.loss(torch.tensor(-0.5 * ((grid - centre) / 0.5) ** 2, dtype=torch.float32)[None], y))
        for centre in grid
    ]
    assert int(np.argmin(losses)) == 5 and losses[5] < 1e-5
    assert all(a > b for a, b in zip(losses[:5], losses[1:6])) and all(a < b for a, b in zip(losses[5:], losses[6:]))
    best = -0.5 * ((grid - 2.5) / 0.5) ** 2
    np.testing.assert_allclose(objective.predictions(best[None]), [[2.5]], atol=1e-9)  # the expectation


def test_ldl_output_starts_at_the_training_mean_not_the_grid_centre():
    task = _task("regression", {"min": 0.0, "max": 10.0, "step": None})
    objective = finetune.Objective(task, _options(rating_loss="ldl"), np.array([[7.0], [8.0]]))
    layer = torch.nn.Linear(4, objective.n_out)
    torch.nn.init.zeros_(layer.weight)
    objective.init_output(layer)
    start = objective.predictions(layer(torch.zeros(1, 4)).detach().numpy())
    np.testing.assert_allclose(start, [[7.5]], atol=1e-3)  # an untouched head would start at 5.0


def test_ldl_on_a_class_task_is_a_config_error_before_training(tmp_path):
    data = _data(tmp_path, "classification")
    with pytest.raises(ConfigError, match=r"finetune\.tiny\.rating_loss: ldl .* this task is classification"):
        _run(tmp_path, data, options=_options(rating_loss="ldl"))
    assert not (tmp_path / "preds.npz").exists() and not (tmp_path / "ckpt").exists()


def test_sample_weights_weight_each_rows_loss():
    objective = finetune.Objective(_task("classification"), _options(), np.array([0, 1, 2]))
    out = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, -3.0]])
    y = torch.tensor([0, 1, 2])
    per_row = torch.nn.functional.cross_entropy(out, y, reduction="none")
    weighted = objective.loss(out, y, torch.tensor([1.0, 0.5, 0.0]))
    assert float(weighted) == pytest.approx(float((per_row[0] + 0.5 * per_row[1]) / 1.5))
    assert float(objective.loss(out, y)) == pytest.approx(float(per_row.mean()))


# ---- pseudo_labels: the teacher-student round --------------------------------------------------
PSEUDO = {"enabled": True, "min_confidence": 0.6}
CONFIDENT = dict(epochs=2, warmup_epochs=0, lr_head=3e-2)  # a teacher sure of the majority class in 2 epochs


def _skewed(root):
    """Classification data where 5 of 6 clips are class 0 (so the tiny teacher predicts test rows
    confidently and the student has pseudo-labelled rows to train on)."""
    train, test, targets, task = _data(root, "classification")
    saved = load_npz(targets)
    y = np.zeros_like(saved["y"])
    y[::6] = 1
    save_npz(targets, ids=saved["ids"], y=y, fold=saved["fold"])
    return train, test, targets, task


def test_pseudo_labels_add_a_student_variant_trained_on_the_confident_test_rows(tmp_path):
    info = _run(tmp_path, _skewed(tmp_path), options=_options(**CONFIDENT), pseudo_labels=PSEUDO)
    preds = load_npz(tmp_path / "preds.npz")
    summary = info["pseudo_labels"]
    assert info["variants"] == ["main", "main+pl"]
    assert summary["n_pseudo"] > 0 and summary["n_test"] == 6 and summary["epochs_run"] == 2
    assert 0.6 <= summary["mean_weight"] <= 1.0
    for split, n in (("val", 8), ("test", 6)):
        P = preds[f"{split}__main+pl"]
        assert P.shape == (n, 3) and np.isfinite(P).all()
        np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(preds["test__main+pl"], preds["test__main"])  # a model of its own
    assert "student" in torch.load(tmp_path / "model.pt", weights_only=False)
    assert not list((tmp_path / "ckpt").glob("*.pt"))


@pytest.mark.parametrize("block", [None, {}, {"enabled": False, "min_confidence": 0.6}])
def test_without_pseudo_labels_enabled_there_is_no_student_variant(tmp_path, block):
    info = _run(tmp_path, _skewed(tmp_path), options=_options(**{**CONFIDENT, "epochs": 1}), pseudo_labels=block)
    assert info["variants"] == ["main"] and "pseudo_labels" not in info
    assert not [key for key in load_npz(tmp_path / "preds.npz") if key.endswith("+pl")]


def test_a_job_killed_in_the_student_round_resumes_to_the_same_predictions(tmp_path, caplog):
    options = _options(**CONFIDENT)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir(), parts.mkdir()
    _run(whole, _skewed(whole), options=options, pseudo_labels=PSEUDO)
    data = _skewed(parts)
    with pytest.raises(finetune.Interrupted, match="pseudo-label student"):
        _run(parts, data, options=options, pseudo_labels=PSEUDO, stop_student_after=1)
    assert (parts / "ckpt" / "last.pt").is_file() and (parts / "ckpt" / "student.pt").is_file()
    with caplog.at_level("INFO", logger="audiofold.finetune"):
        info = _run(parts, data, options=options, pseudo_labels=PSEUDO)
    assert "pseudo-label student: resuming after epoch 1" in caplog.text
    assert [h["epoch"] for h in info["pseudo_labels"]["history"]] == [1, 2]
    a, b = load_npz(whole / "preds.npz"), load_npz(parts / "preds.npz")
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_the_refit_student_predicts_the_test_set_only(tmp_path):
    info = _run(tmp_path, _skewed(tmp_path), fold=None, epochs=2, options=_options(**CONFIDENT), pseudo_labels=PSEUDO)
    preds = load_npz(tmp_path / "preds.npz")
    assert info["pseudo_labels"]["n_pseudo"] > 0 and info["pseudo_labels"]["epochs_run"] == 2
    assert sorted(k for k in preds if "__" in k) == ["test__main", "test__main+pl"]
    assert preds["test__main+pl"].shape == (6, 3) and np.isfinite(preds["test__main+pl"]).all()
