import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from audiofold import demo_data
from audiofold.audio import load_mono
from audiofold.backbones import build_backbone
from audiofold.demo_data import EVENT_TYPES, generate_demo, materialise_demo
from audiofold.embed import embed_waves
from audiofold.tasks import infer_task

KINDS = ("regression", "multitarget", "classification", "multilabel")
N_TRAIN = 120  # enough for a stable 4-fold estimate of learnability
# One worker makes the data sets (about 10 s) for the whole module, not each worker its own copy.
pytestmark = pytest.mark.xdist_group("demo")


@pytest.fixture(scope="module")
def demo_sets(tmp_path_factory):
    """One generated data set per kind (default seed), shared by the tests below."""
    root = tmp_path_factory.mktemp("demo")
    return {kind: generate_demo(root / kind, kind, n_train=N_TRAIN, n_test=5) for kind in KINDS}


def clip_path(audio_dir: Path, clip: str) -> Path:
    """How the pipeline finds a clip: the id itself, else the id plus an extension."""
    if (audio_dir / clip).is_file():
        return audio_dir / clip
    (match,) = audio_dir.glob(f"{clip}.*")
    return match


def tables(info):
    paths = info["paths"]
    return (
        pd.read_csv(paths["train_csv"], dtype={info["id_column"]: str}),
        pd.read_csv(paths["test_csv"], dtype=str),
        pd.read_csv(paths["sample_submission"]),
    )


@pytest.mark.parametrize("kind", KINDS)
def test_tables_and_files(demo_sets, kind):
    info = demo_sets[kind]
    train, test, sample = tables(info)
    id_column = "fname" if kind == "multilabel" else "clip_id"
    assert info["id_column"] == id_column and info["n_train"] == len(train) == N_TRAIN and len(test) == 5
    assert list(test.columns) == [id_column]
    assert sample[id_column].tolist() == test[id_column].tolist()
    for split, frame in (("train", train), ("test", test)):
        audio_dir = Path(info["paths"][f"{split}_audio_dir"])
        assert sorted(p.name for p in audio_dir.iterdir()) == sorted(
            clip_path(audio_dir, c).name for c in frame[id_column]
        )
    if kind == "multilabel":
        assert train[id_column].str.fullmatch(r"tr\d{4}\.(wav|flac|ogg|mp3)").all()
    else:
        assert train[id_column].str.fullmatch(r"tr\d{4}").all()


def test_regression_ratings_use_the_whole_half_step_scale(demo_sets):
    train, _, sample = tables(demo_sets["regression"])
    assert list(train.columns) == ["clip_id", "rating"] and list(sample.columns) == ["clip_id", "rating"]
    ratings = train["rating"]
    assert ratings.between(0, 5).all() and (ratings * 2 == (ratings * 2).round()).all()
    assert ratings.nunique() >= 7 and ratings.std() > 0.7
    assert (sample["rating"] == 0).all()


def test_multitarget_values_are_continuous_and_loosely_correlated(demo_sets):
    train, _, sample = tables(demo_sets["multitarget"])
    assert list(sample.columns) == ["clip_id", "valence", "arousal"]
    for column in ("valence", "arousal"):
        assert train[column].between(-1, 1).all() and train[column].nunique() > 100 and train[column].std() > 0.2
    assert 0.1 < np.corrcoef(train["valence"], train["arousal"])[0, 1] < 0.8


def test_classification_classes_are_balanced_event_names(demo_sets):
    info = demo_sets["classification"]
    train, _, sample = tables(info)
    assert list(sample.columns) == ["clip_id", "scene"] and info["classes"] == sorted(EVENT_TYPES)
    assert train["scene"].value_counts().to_dict() == {name: N_TRAIN // 5 for name in EVENT_TYPES}


def test_multilabel_is_fsd2019_style(demo_sets):
    info = demo_sets["multilabel"]
    train, _, sample = tables(info)
    assert list(sample.columns) == ["fname", *sorted(EVENT_TYPES)] and (sample.iloc[:, 1:] == 0).all().all()
    labels = train["labels"].str.split(",")
    assert labels.map(len).between(1, 3).all() and labels.map(lambda v: set(v) <= set(EVENT_TYPES)).all()
    assert labels.map(len).nunique() == 3  # single- and multi-label rows both occur


@pytest.mark.parametrize("kind", KINDS)
def test_task_inference_reads_the_demo_as_its_kind(demo_sets, kind):
    train, test, sample = tables(demo_sets[kind])
    spec, _ = infer_task(train, test, sample)
    assert spec.kind == kind and spec.id_column == demo_sets[kind]["id_column"]
    assert spec.label_columns == demo_sets[kind]["label_columns"]
    if kind in ("classification", "multilabel"):
        assert spec.classes == sorted(EVENT_TYPES)
    spec.encode_targets(train)  # every label parses


def test_audio_formats_rates_channels_and_lengths_vary(demo_sets):
    audio_dir = Path(demo_sets["regression"]["paths"]["train_audio_dir"])
    infos = [sf.info(p) for p in sorted(audio_dir.iterdir())]
    assert {i.format for i in infos} == {"WAV", "FLAC", "OGG", "MP3"}
    assert {i.samplerate for i in infos} == {8000, 16000, 22050, 32000, 44100, 48000}
    assert {i.channels for i in infos} == {1, 2}
    assert {i.subtype for i in infos if i.format == "WAV"} == {"PCM_16", "PCM_24", "FLOAT"}
    assert {i.subtype for i in infos if i.format == "FLAC"} == {"PCM_16", "PCM_24"}
    durations = np.array([i.duration for i in infos if i.format != "MP3"])  # mp3 frames pad the end
    assert durations.min() >= 1.0 and durations.max() <= 4.0 and durations.max() - durations.min() > 2.5
    assert sum(demo_sets["regression"]["formats"].values()) == N_TRAIN + 5


def test_same_seed_same_data(tmp_path):
    a = generate_demo(tmp_path / "a", "multilabel", n_train=16, n_test=4, seed=3)
    generate_demo(tmp_path / "c", "multilabel", n_train=16, n_test=4, seed=4)
    time.sleep(1.0)  # every file of b is written in a later second than its twin: catches embedded timestamps
    b = generate_demo(tmp_path / "b", "multilabel", n_train=16, n_test=4, seed=3)
    assert a["formats"] == b["formats"] and set(a["formats"]) == {"wav", "flac", "ogg", "mp3"}
    for name in ("train.csv", "test.csv", "sample_submission.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "train.csv").read_bytes() != (tmp_path / "c" / "train.csv").read_bytes()
    for first in sorted((tmp_path / "a").glob("t*/*.*")):
        second = tmp_path / "b" / first.relative_to(tmp_path / "a")
        if first.suffix == ".ogg":  # libsndfile draws a random Ogg stream serial number: compare the audio
            np.testing.assert_array_equal(sf.read(first)[0], sf.read(second)[0])
        else:
            assert first.read_bytes() == second.read_bytes(), first.name


def embed_train(info):
    train, _, _ = tables(info)
    audio_dir = Path(info["paths"]["train_audio_dir"])
    waves = [load_mono(clip_path(audio_dir, clip), 16000) for clip in train[info["id_column"]]]
    X, _ = embed_waves(waves, build_backbone("logmel", {"type": "logmel"}), progress=False)
    return X, train


def cv_score(model, X, y, scoring):
    return cross_val_score(model, X, y, cv=4, scoring=scoring).mean()


@pytest.mark.parametrize("kind", KINDS)
def test_labels_are_learnable_from_logmel_with_a_linear_model(demo_sets, kind):
    """4-fold cross-validation: each clip is scored by a model that never saw it."""
    X, train = embed_train(demo_sets[kind])
    if kind in ("regression", "multitarget"):
        ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 4, 12)))
        margin = 0.3 if kind == "regression" else 0.2
        for column in demo_sets[kind]["label_columns"]:
            r2, trivial = cv_score(ridge, X, train[column], "r2"), cv_score(DummyRegressor(), X, train[column], "r2")
            assert r2 > trivial + margin, (column, r2, trivial)
        return
    logistic = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    if kind == "classification":
        accuracy = cv_score(logistic, X, train["scene"], "accuracy")
        trivial = cv_score(DummyClassifier(), X, train["scene"], "accuracy")
        assert accuracy > trivial + 0.4, (accuracy, trivial)
        return
    present = np.array([[name in labels.split(",") for name in EVENT_TYPES] for labels in train["labels"]])
    aucs = [cv_score(logistic, X, column, "roc_auc") for column in present.T]
    assert np.mean(aucs) > 0.8 and min(aucs) > 0.65, dict(zip(EVENT_TYPES, np.round(aucs, 3)))  # trivial: 0.5


def test_materialise_moves_every_piece_into_place(tmp_path):
    out = tmp_path / "results" / "demo"
    outputs = {
        "train": str(out / "train.csv"),
        "test": str(out / "test.csv"),
        "sample": str(tmp_path / "sub.csv"),
        "train_audio": str(out / "train"),
        "test_audio": str(tmp_path / "test_clips"),
    }
    params = {"enabled": True, "kind": "classification", "n_train": 6, "n_test": 2, "seed": 1}
    info = materialise_demo(out, params, outputs=outputs)
    assert info["paths"]["sample_submission"] == outputs["sample"]
    assert len(list(Path(outputs["test_audio"]).iterdir())) == 2
    assert sorted(p.name for p in out.iterdir()) == ["test.csv", "train", "train.csv"]  # no temp folder left

    params["n_train"] = 5  # a second run replaces the audio folders rather than mixing old and new clips
    materialise_demo(out, params, outputs=outputs)
    assert len(list((out / "train").iterdir())) == 5
    with pytest.raises(ValueError, match="unknown demo outputs"):
        materialise_demo(out, params, outputs={"labels": "x.csv"})


def test_refuses_bad_kind_and_a_used_audio_folder(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        generate_demo(tmp_path, "ranking", n_train=2, n_test=1)
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "old.wav").write_bytes(b"")
    with pytest.raises(FileExistsError, match="not empty"):
        generate_demo(tmp_path, "regression", n_train=2, n_test=1)


def test_command_line(tmp_path, capsys):
    demo_data.main([str(tmp_path / "cli"), "--kind", "multitarget", "--n-train", "4", "--n-test", "2", "--seed", "5"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["kind"] == "multitarget" and printed["label_columns"] == ["valence", "arousal"]
    assert len(pd.read_csv(tmp_path / "cli" / "train.csv")) == 4
