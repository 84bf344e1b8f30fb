"""`audiofold init`: finds tables and audio folders in a Kaggle-style folder, infers the task, writes a
config that validates and that the prepare step reads back to the same task."""

import numpy as np
import pandas as pd
import pytest
import yaml

from audiofold.cli import main as cli
from audiofold.cli.scaffold import scaffold, write_config
from audiofold.config import load_config
from audiofold.errors import ConfigError, DataError
from audiofold.prepare import prepare

from helpers import clip_ids, make_folder


def test_rating_scale_with_step(tmp_path):
    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        {"utt_id": clip_ids("a", 30), "speaker": np.repeat(clip_ids("s", 6), 5), "score": rng.integers(0, 21, 30) / 2}
    )
    data = make_folder(tmp_path / "data", train, clip_ids("b", 8), test_csv=True)
    result = scaffold(data, base_dir=tmp_path)
    cfg = result.config
    assert cfg["data"]["train_csv"] == "data/train.csv" and cfg["data"]["test_csv"] == "data/test.csv"
    assert cfg["data"]["train_audio_dir"] == "data/train_audio" and cfg["data"]["test_audio_dir"] == "data/test_audio"
    assert cfg["data"]["id_column"] == "utt_id" and cfg["data"]["label_columns"] == ["score"]
    assert cfg["task"]["kind"] == "regression" and cfg["task"]["scale"]["step"] == 0.5
    assert cfg["demo"] == {"enabled": False}
    # the default: the packaged pretrained backbones (installed here) and the hand-crafted ones
    assert list(cfg["backbones"]) == [
        "aisfx",
        "distillmos",
        "resemblyzer",
        "whisper",
        "logmel",
        "mfcc",
    ]  # speaker encoder and whisper: ratings
    assert list(cfg["heads"]) == ["linear", "lgbm", "knn"]  # rating kinds: all three paid off on speechocean762
    assert cfg["task"]["scale"] == {"min": float(train.score.min()), "max": float(train.score.max()), "step": 0.5}
    notes = "\n".join(result.notes)
    assert "resemblyzer adds +0.013 Pearson" in notes and "blend_selection_speechocean762.md" in notes
    assert "whisper encoder alone reaches Pearson 0.787" in notes
    assert "30 of 30 train ids name a file there" in notes
    assert f"rating scale: min {train.score.min():g}, max {train.score.max():g}, step 0.5" in notes
    assert "written to task.scale" in notes and "edit it if the real scale is wider" in notes
    # a speaker column is used by default, with the reason and the opt-out printed
    assert cfg["data"]["group_column"] == "speaker" and "group column: 'speaker'" in notes and "--no-group" in notes
    assert cfg["cv"]["n_folds"] == 5  # 6 speakers fill the template's 5 folds


def test_default_models_are_the_strong_ones_fast_keeps_the_handcrafted(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(3)
    cls = pd.DataFrame({"clip": clip_ids("k", 20), "category": rng.choice(["dog", "cat", "cow"], 20)})
    make_folder(tmp_path / "data", cls, clip_ids("m", 4))
    monkeypatch.chdir(tmp_path)
    assert cli(["init", "data", "--output", "strong.yaml"]) == 0
    printed = capsys.readouterr().out
    config = load_config("strong.yaml")  # validates against the schema
    # class kinds: what added to the nested ESC-10 blend; the speaker encoder and distillmos cost accuracy there
    assert [p["type"] for p in config["backbones"].values()] == [
        "aisfx",
        "whisper",
        "speech_embedding",
        "logmel",
        "mfcc",
    ]
    assert "whisper adds +0.020 accuracy" in printed and "distillmos costs 0.0025 and resemblyzer 0.0025" in printed
    # class kinds: linear and lgbm; knn trailed both on every ESC-10 backbone
    assert {name: p["type"] for name, p in config["heads"].items()} == {"linear": "linear", "lgbm": "lgbm"}
    assert config["heads"]["linear"].get("C", "auto") == "auto"
    text = (tmp_path / "strong.yaml").read_text()
    for where in (printed, text):  # the evidence is printed and kept in the file's header
        assert "benchmarks/results/quality.md" in where and "--fast" in where

    assert cli(["init", "data", "--output", "fast.yaml", "--fast"]) == 0
    fast = load_config("fast.yaml")
    assert {p["type"] for p in fast["backbones"].values()} == {"logmel", "mfcc"}
    assert list(fast["heads"]) == ["linear", "knn"]  # today's template, unchanged
    printed = capsys.readouterr().out
    assert "--fast: hand-crafted features only" in printed
    assert "adds the pretrained aisfx, whisper, speech_embedding when" in printed


def test_missing_packaged_backbone_is_left_out_with_how_to_install(tmp_path, monkeypatch):
    """The availability check is doctor's: the package's metadata, then its import."""
    import importlib.metadata

    real_version = importlib.metadata.version

    def version(name):
        if name == "aisfx":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    train = pd.DataFrame({"id": clip_ids("a", 20), "rating": [1.0, 2.0, 3.0, 4.0] * 5})
    result = scaffold(make_folder(tmp_path / "d", train, clip_ids("b", 4)), base_dir=tmp_path)
    assert list(result.config["backbones"]) == ["distillmos", "resemblyzer", "whisper", "logmel", "mfcc"]
    (note,) = [n for n in result.notes if n.startswith("backbone aisfx left out")]
    assert "not installed" in note and "requirements/packaged-weights.txt" in note
    assert "pretrained distillmos" in "\n".join(result.notes)


def test_no_group_opts_out_and_few_speakers_lower_n_folds(tmp_path, monkeypatch, capsys):
    train = pd.DataFrame(
        {
            "utt_id": clip_ids("a", 24),
            "speaker": np.repeat(clip_ids("s", 4), 6),
            "score": np.tile([1.0, 2.0, 3.0, 4.0], 6),
        }
    )
    data = make_folder(tmp_path / "data", train, clip_ids("b", 4))
    opted_out = scaffold(data, base_dir=tmp_path, auto_group=False)
    assert opted_out.config["data"]["group_column"] is None and opted_out.config["cv"]["n_folds"] == 5
    assert any("--no-group leaves folds ungrouped" in n for n in opted_out.notes)
    assert opted_out.config["cv"]["auto_groups"] is False  # no pseudo-groups either

    monkeypatch.chdir(tmp_path)
    assert cli(["init", "data", "--output", "grouped.yaml"]) == 0
    printed = capsys.readouterr().out
    assert "group column: 'speaker'" in printed and "cv.n_folds: 4 (only 4 groups in 'speaker'" in printed
    config = load_config("grouped.yaml")
    assert config["data"]["group_column"] == "speaker" and config["cv"]["n_folds"] == 4
    prepare(config, tmp_path / "results")  # 5 folds would stop here: 4 groups cannot fill them
    folds = pd.read_csv(tmp_path / "results/folds.csv")
    assert folds["fold"].nunique() == 4 and folds.groupby("group")["fold"].nunique().max() == 1

    assert cli(["init", "data", "--output", "ungrouped.yaml", "--no-group"]) == 0
    assert load_config("ungrouped.yaml")["data"]["group_column"] is None
    assert load_config("ungrouped.yaml")["cv"]["auto_groups"] is False
    unnamed = make_folder(tmp_path / "unnamed", train.drop(columns="speaker"), clip_ids("b", 4))
    note = [n for n in scaffold(unnamed, base_dir=tmp_path).notes if n.startswith("no group column")]
    assert note and "pseudo-groups" in note[0] and "cv.auto_groups: false" in note[0]
    with pytest.raises(SystemExit):  # one or the other
        cli(["init", "data", "--output", "x.yaml", "--no-group", "--group-column", "speaker"])


def test_written_config_validates_and_prepare_reads_the_same_task(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    train = pd.DataFrame(
        {
            "fname": clip_ids("c", 24),
            "labels": [",".join(rng.choice(["dog", "rain", "bell"], 2, replace=False)) for _ in range(24)],
        }
    )
    sample = pd.DataFrame({"fname": clip_ids("t", 6), "bell": 0.0, "dog": 0.0, "rain": 0.0})
    data = make_folder(tmp_path / "data", train, clip_ids("t", 6), sample=sample, ext="flac", test_csv=False)
    monkeypatch.chdir(tmp_path)
    assert cli(["init", "data", "--output", "my.yaml"]) == 0
    config = load_config("my.yaml")
    assert config["task"]["kind"] == "multilabel" and config["task"]["label_sep"] == ","
    assert config["data"]["test_csv"] is None and config["data"]["sample_submission"] == "data/sample_submission.csv"
    assert "multilabel separator" in (tmp_path / "my.yaml").read_text()  # the reasons are in the file
    prepare(config, tmp_path / "results")
    task = yaml.safe_load((tmp_path / "results" / "task.json").read_text())["task"]
    assert task["kind"] == "multilabel" and task["classes"] == ["bell", "dog", "rain"] and task["label_sep"] == ","
    assert data.is_dir()


def test_multitarget_and_classes(tmp_path):
    rng = np.random.default_rng(2)
    va = pd.DataFrame({"id": clip_ids("v", 20), "valence": rng.normal(size=20), "arousal": rng.normal(size=20)})
    result = scaffold(make_folder(tmp_path / "va", va, clip_ids("w", 4)), base_dir=tmp_path)
    assert result.config["task"]["kind"] == "multitarget"
    assert result.config["data"]["label_columns"] == ["valence", "arousal"]

    cls = pd.DataFrame({"clip": clip_ids("k", 20), "category": rng.choice(["dog", "cat", "cow"], 20)})
    result = scaffold(make_folder(tmp_path / "cls", cls, clip_ids("m", 4)), base_dir=tmp_path)
    assert result.config["task"]["kind"] == "classification"
    assert any("3 classes" in n for n in result.notes)


def test_every_guess_can_be_overridden(tmp_path):
    train = pd.DataFrame({"id": clip_ids("a", 20), "spk": np.repeat(["x", "y"], 10), "grade": [1, 2, 3, 4] * 5})
    data = make_folder(tmp_path / "d", train, clip_ids("b", 4), train_sub="wavs/tr", test_sub="wavs/te")
    result = scaffold(
        data,
        base_dir=tmp_path,
        kind="classification",
        group_column="spk",
        label_columns=["grade"],
        id_column="id",
        train_audio_dir=data / "wavs" / "tr",
    )
    cfg = result.config
    assert cfg["task"] == {"kind": "classification"} and cfg["data"]["group_column"] == "spk"
    assert cfg["data"]["train_audio_dir"] == "d/wavs/tr" and cfg["data"]["test_audio_dir"] == "d/wavs/te"
    with pytest.raises(DataError, match="--group-column 'nope'"):
        scaffold(data, base_dir=tmp_path, group_column="nope")


def test_refuses_to_overwrite_without_force(tmp_path, capsys):
    train = pd.DataFrame({"id": clip_ids("a", 20), "rating": [1.0, 2.0] * 10})
    data = make_folder(tmp_path / "d", train, clip_ids("b", 4))
    out = tmp_path / "config.yaml"
    out.write_text("keep: me\n")
    result = scaffold(data, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="--force"):
        write_config(result, out)
    assert out.read_text() == "keep: me\n"
    assert cli(["init", str(data), "--output", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert cli(["init", str(data), "--output", str(out), "--force"]) == 0
    assert load_config(out)["data"]["id_column"] == "id"


def test_missing_pieces_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .csv file"):
        scaffold(tmp_path / "empty")
    only_train = tmp_path / "t"
    only_train.mkdir()
    pd.DataFrame({"id": ["a", "b"], "y": [1, 2]}).to_csv(only_train / "train.csv", index=False)
    with pytest.raises(DataError, match="no test table or sample submission"):
        scaffold(only_train)
    pd.DataFrame({"id": ["c"]}).to_csv(only_train / "test.csv", index=False)
    with pytest.raises(DataError, match="no audio folder holds files named after the train ids"):
        scaffold(only_train)
