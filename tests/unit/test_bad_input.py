"""Bad input, round 2 (issue 13): one test per case, named as in docs/BAD_INPUT.md.

Tables are written as files and read the way the workflow reads them; audio-folder cases go
through prepare and validate. Snakemake-level cases (edited clips) are in test_bad_input_workflow.py.
"""

import logging
import os
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audiofold.clips import list_clips
from audiofold.errors import DataError
from audiofold.io import load_npz, read_json, save_npz
from audiofold.prepare import prepare
from audiofold.submit import make_submission, validate_submission, write_submission
from audiofold.tables import read_table
from audiofold.tasks import TaskSpec, infer_task
from audiofold.validate import run_validation


def clip(path, freq=440.0):
    t = np.arange(800) / 8000
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 8000)


def kaggle(tmp_path, train_rows, test_ids, sample_rows=None, *, encoding="utf-8", files=None, policy="error"):
    """A Kaggle-style folder: train.csv/test.csv/sample_submission.csv written as given, train/ and test/ <id>.wav.

    ``train_rows``: lines after the header ``id,label``; ``files``: {id: filename} overrides."""
    files = files or {}
    for split in ("train", "test"):
        (tmp_path / split).mkdir(exist_ok=True)
    train_ids = [row.split(",")[0] for row in train_rows]
    for split, ids in (("train", train_ids), ("test", test_ids)):
        for i, clip_id in enumerate(ids):
            name = files.get(clip_id, f"{clip_id.strip()}.wav")
            if name is not None:
                clip(tmp_path / split / name, 200 + 30 * i)
    (tmp_path / "train.csv").write_bytes(("id,label\n" + "\n".join(train_rows) + "\n").encode(encoding))
    (tmp_path / "test.csv").write_bytes(("id\n" + "\n".join(test_ids) + "\n").encode(encoding))
    sample_rows = sample_rows if sample_rows is not None else [f"{i},dog" for i in test_ids]
    (tmp_path / "sample_submission.csv").write_bytes(("id,label\n" + "\n".join(sample_rows) + "\n").encode(encoding))
    return {
        "seed": 1,
        "data": {
            "train_csv": str(tmp_path / "train.csv"),
            "test_csv": str(tmp_path / "test.csv"),
            "sample_submission": str(tmp_path / "sample_submission.csv"),
            "train_audio_dir": str(tmp_path / "train"),
            "test_audio_dir": str(tmp_path / "test"),
            "id_column": None,
            "label_columns": None,
            "group_column": None,
            "fold_column": None,
            "path_column": None,
            "audio_extensions": ["wav", "flac"],
        },
        "task": {"kind": "auto"},
        "cv": {"n_folds": 2, "n_bins": 4},
        "audio": {"bad_audio": policy},
    }


def validate_prepared(tmp_path, config):
    return run_validation(
        config["data"],
        policy=config["audio"]["bad_audio"],
        max_seconds=5,
        shard_clips="auto",
        out_dir=tmp_path / "results/validation",
    )


def manifest(config):
    """The clip list the validate step writes (id, split, path, chunk)."""
    return list_clips(config["data"], "auto", missing_ok=config["audio"]["bad_audio"] != "error")


# ---- 2. ids NA, null, None, nan are text --------------------------------------------------------
def test_ids_that_pandas_calls_missing_stay_ids(tmp_path):
    train = ["NA,dog", "null,cat", "None,dog", "nan,cat", "-nan,dog", "x1,cat"]
    config = kaggle(tmp_path, train, ["NULL", "t1"], sample_rows=["t1,dog", "NULL,cat"])
    prepare(config, tmp_path / "results")
    assert manifest(config)["id"].tolist() == ["NA", "null", "None", "nan", "-nan", "x1", "NULL", "t1"]
    assert load_npz(tmp_path / "results/targets.npz")["ids"].tolist() == ["NA", "null", "None", "nan", "-nan", "x1"]
    task = TaskSpec.from_dict(read_json(tmp_path / "results/task.json")["task"])
    save_npz(tmp_path / "blend.npz", ids=np.array(["NULL", "t1"]), P=np.array([[0.9, 0.1], [0.2, 0.8]]))
    write_submission(tmp_path / "blend.npz", task, config["data"]["sample_submission"], tmp_path / "sub.csv")
    assert (tmp_path / "sub.csv").read_text().splitlines()[1:] == ["t1,dog", "NULL,cat"]


def test_class_names_that_pandas_calls_missing_stay_classes_numbers_still_parse(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,label,rating\na,None,1\nb,NA,NA\nc,dog,2.5\n")
    df = read_table(path)
    assert df["label"].tolist() == ["None", "NA", "dog"]
    assert df["rating"].dtype.kind == "f" and np.isnan(df["rating"][1])
    spec, _ = infer_task(df[["id", "label"]].assign(), None, None, id_column="id", label_columns=["label"])
    assert spec.kind == "classification" and spec.classes == ["NA", "None", "dog"]


def test_an_empty_id_cell_is_an_error_naming_the_row(tmp_path):
    config = kaggle(tmp_path, ["a,dog", ",cat", "c,dog", "d,cat"], ["t1"], files={"": None})
    config["data"]["id_column"] = "id"
    with pytest.raises(DataError, match=r"train.csv, row 3: the id cell \(column 'id'\) is empty"):
        prepare(config, tmp_path / "results")


# ---- 3. trailing spaces in ids ------------------------------------------------------------------
def test_ids_with_trailing_spaces_match_and_the_sample_is_written_as_given(tmp_path):
    config = kaggle(tmp_path, ["a,dog", "b,cat", "c,dog", "d,cat"], ["t1 ", " t2"], sample_rows=["t2 ,dog", "t1  ,dog"])
    prepare(config, tmp_path / "results")
    test = manifest(config).query("split == 'test'")
    assert test["id"].tolist() == ["t1", "t2"] and test["path"].str.endswith(("t1.wav", "t2.wav")).all()
    task = TaskSpec.from_dict(read_json(tmp_path / "results/task.json")["task"])
    save_npz(tmp_path / "blend.npz", ids=np.array(["t1", "t2"]), P=np.array([[0.9, 0.1], [0.2, 0.8]]))
    sub = write_submission(tmp_path / "blend.npz", task, config["data"]["sample_submission"], tmp_path / "sub.csv")
    written = pd.read_csv(tmp_path / "sub.csv", dtype=str, keep_default_na=False)
    assert written["id"].tolist() == ["t2 ", "t1  "], "the sample's ids exactly as given, in its order"
    assert written["label"].tolist() == [task.classes[1], task.classes[0]]
    validate_submission(sub, read_table(tmp_path / "sample_submission.csv").attrs["raw"], task)


# ---- 4. Windows-1252 tables ---------------------------------------------------------------------
def test_windows_1252_table_is_read_as_cp1252_and_logged(tmp_path, caplog):
    path = tmp_path / "t.csv"
    path.write_bytes("id,label\n€uro,“quoted”\ncafé,x\n".encode("cp1252"))
    with caplog.at_level(logging.INFO, logger="audiofold.tables"):
        df = read_table(path)
    assert df["id"].tolist() == ["€uro", "café"] and df["label"].tolist() == ["“quoted”", "x"]
    assert "read it as cp1252" in caplog.text


def test_bytes_cp1252_does_not_define_fall_back_to_latin1(tmp_path, caplog):
    path = tmp_path / "t.csv"
    path.write_bytes(b"id,label\nx\x81y,a\n")  # 0x81 is undefined in cp1252
    with caplog.at_level(logging.INFO, logger="audiofold.tables"):
        assert read_table(path)["id"].tolist() == ["x\x81y"]
    assert "read it as latin-1" in caplog.text


# ---- 5. a class name with a comma ---------------------------------------------------------------
def test_quoted_class_name_with_a_comma_stays_classification(tmp_path, caplog):
    rows = ['a,"dog, barking"', "b,cat", 'c,"dog, barking"', "d,cat", 'e,"dog, barking"', "f,rain"]
    config = kaggle(tmp_path, rows, ["t1", "t2"])
    with caplog.at_level(logging.WARNING, logger="audiofold.tasks"):
        prepare(config, tmp_path / "results")
    task = TaskSpec.from_dict(read_json(tmp_path / "results/task.json")["task"])
    assert task.kind == "classification" and task.classes == ["cat", "dog, barking", "rain"]
    assert "'dog, barking'" in caplog.text and "task.kind: multilabel" in caplog.text
    sub = make_submission(
        ["t1", "t2"],
        np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1]]),
        task,
        read_table(tmp_path / "sample_submission.csv").attrs["raw"],
    )
    assert sub["label"].tolist() == ["dog, barking", "cat"]


def test_class_names_with_commas_that_are_sample_columns_stay_classification():
    train = pd.DataFrame({"id": list("abcd"), "label": ["dog,barking", "cat", "dog,barking", "cat"]})
    sample = pd.DataFrame({"id": ["t"], "cat": [0.5], "dog,barking": [0.5]})
    spec, _ = infer_task(train, None, sample)
    assert spec.kind == "classification" and spec.classes == ["cat", "dog,barking"]


def test_separators_without_spaces_still_mean_multilabel():
    train = pd.DataFrame({"id": list("abcd"), "labels": ["dog,rain", "cat", "rain;cat", "dog"]})
    spec, notes = infer_task(train, None, pd.DataFrame({"id": ["t"], "labels": ["dog"]}))
    assert spec.kind == "multilabel" and spec.classes == ["cat", "dog", "rain"]


# ---- 6. symlink loops in an audio folder ----------------------------------------------------------
def test_an_unlisted_symlink_loop_is_reported_not_a_crash(tmp_path, caplog):
    config = kaggle(tmp_path, ["a,dog", "b,cat", "c,dog", "d,cat"], ["t1"])
    os.symlink(tmp_path / "train/loop2.wav", tmp_path / "train/loop1.wav")
    os.symlink(tmp_path / "train/loop1.wav", tmp_path / "train/loop2.wav")
    prepare(config, tmp_path / "results")
    with caplog.at_level(logging.INFO, logger="audiofold.validate"):
        report = validate_prepared(tmp_path, config)
    assert report["problems"] == []
    assert [os.path.basename(p) for p in report["broken_links"]] == ["loop1.wav", "loop2.wav"]
    assert "lead to no file" in caplog.text


@pytest.mark.parametrize("policy", ["error", "skip"])
def test_a_listed_clip_that_is_a_symlink_loop_gets_the_bad_audio_policy(tmp_path, policy):
    config = kaggle(
        tmp_path, ["a,dog", "b,cat", "c,dog", "d,cat", "e,dog", "f,cat"], ["t1"], files={"b": None}, policy=policy
    )
    os.symlink(tmp_path / "train/b.wav", tmp_path / "train/b.wav")  # links to itself
    if policy == "error":
        with pytest.raises(DataError, match=r"row 3.*id 'b'.*b.wav, is a symlink that leads to no file"):
            validate_prepared(tmp_path, config)
        return
    prepare(config, tmp_path / "results")
    report = validate_prepared(tmp_path, config)
    assert report["skipped"] == ["b"] and report["problems"][0]["problem"].startswith("broken symlink")
    assert report["broken_links"] == [], "a listed entry is reported once, under problems"


# ---- acceptable cases, done better ---------------------------------------------------------------
def test_a_train_table_with_only_a_header_says_it_has_no_rows(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("id,label\n")
    with pytest.raises(DataError, match=r"train.csv has a header \(id, label\) but no rows"):
        read_table(path, "training table")


def test_label_whitespace_is_stripped_and_case_variants_are_warned(caplog):
    path_rows = pd.DataFrame({"id": list("abcdef"), "label": [" dog", "dog ", "Dog", "cat", "cat", "CAT"]})
    with caplog.at_level(logging.WARNING, logger="audiofold.tasks"):
        spec, _ = infer_task(_as_read(path_rows), None, None)
    assert spec.classes == ["CAT", "Dog", "cat", "dog"]
    assert "2 label(s) differ only in case" in caplog.text and "['CAT', 'cat']" in caplog.text


def _as_read(df):
    """``df`` written and read back as the workflow reads tables."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.csv")
        df.to_csv(path, index=False)
        return read_table(path)


def test_a_sample_column_that_is_no_label_is_named(caplog):
    """Numeric columns look like predictions to fill; text ones (Usage) are copied (round 3, test_bad_input_r3)."""
    train = pd.DataFrame({"id": list("abcd"), "rating": [1.0, 2.0, 3.0, 4.0]})
    sample = pd.DataFrame({"id": ["t"], "rating": [0.0], "extra": [0.0]})
    with pytest.raises(DataError, match=r"sample submission column\(s\) \['extra'\] are not label columns"):
        infer_task(train, pd.DataFrame({"id": ["t"]}), sample)
    cls = pd.DataFrame({"id": list("abcd"), "label": ["cat", "dog", "cat", "dog"]})
    sample = pd.DataFrame({"id": ["t"], "cat": [0.5], "dog": [0.5], "bird": [0.0]})
    with caplog.at_level(logging.WARNING, logger="audiofold.tasks"):
        infer_task(cls, pd.DataFrame({"id": ["t"]}), sample)
    assert "column(s) ['bird'] never occur as a training label" in caplog.text


def test_the_same_clip_in_two_formats_names_the_one_used(tmp_path, caplog):
    config = kaggle(tmp_path, ["a,dog", "b,cat", "c,dog", "d,cat"], ["t1"])
    clip(tmp_path / "train/b.flac", 900)
    with caplog.at_level(logging.WARNING, logger="audiofold.clips"):
        prepare(config, tmp_path / "results")
    assert manifest(config).set_index("id").loc["b", "path"].endswith("b.wav")
    assert "'b': used b.wav, ignored b.flac" in caplog.text


def test_an_nfc_id_finds_an_nfd_file_name(tmp_path):
    nfc = unicodedata.normalize("NFC", "café")
    nfd = unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    config = kaggle(tmp_path, [f"{nfc},dog", "b,cat", "c,dog", "d,cat"], ["t1"], files={nfc: f"{nfd}.wav"})
    prepare(config, tmp_path / "results")
    row = manifest(config).iloc[0]
    assert row["id"] == nfc and row["path"].endswith(f"{nfd}.wav")


@pytest.mark.parametrize(
    "section,name,params,message",
    [
        (
            "heads",
            "knn",
            {"type": "knn", "kk": 3},
            r"config.yaml: key heads.knn.kk: unknown option for head type 'knn'",
        ),
        ("heads", "h", {"type": "forest"}, r"key heads.h.type: unknown head type 'forest'"),
        (
            "backbones",
            "b",
            {"type": "wav2vec", "sample_rate": 16000},
            r"key backbones.b.type: unknown backbone type 'wav2vec'",
        ),
        ("backbones", "logmel", {"type": "logmel", "n_mel": 64}, r"key backbones.logmel.n_mel: unknown option"),
    ],
)
def test_unknown_backbone_or_head_types_and_options_fail_at_start_up(section, name, params, message):
    import yaml

    from audiofold.config import load_schema, validate_config
    from audiofold.errors import ConfigError

    from conftest import ROOT

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config[section][name] = params
    with pytest.raises(ConfigError, match=message):
        validate_config(config, load_schema(ROOT / "workflow/schemas/config.schema.yaml"))


def test_a_config_typo_names_the_file_that_holds_the_key(tmp_path):
    import yaml

    from audiofold.config import load_schema, validate_config
    from audiofold.errors import ConfigError

    from conftest import ROOT

    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "my.yaml").write_text("cv:\n  n_fold: 3\nheads:\n  knn:\n    type: knn\n    kk: 3\n")
    sources = [tmp_path / "my.yaml", tmp_path / "config.yaml"]
    schema = load_schema(ROOT / "workflow/schemas/config.schema.yaml")
    config = {**base, "cv": {"n_fold": 3}}
    with pytest.raises(ConfigError, match=r"my.yaml: key cv: Additional properties .*'n_fold'"):
        validate_config(config, schema, sources=sources)
    config = {**base, "heads": {"knn": {"type": "knn", "kk": 3}}}
    with pytest.raises(ConfigError, match=r"my.yaml: key heads.knn.kk: unknown option"):
        validate_config(config, schema, sources=sources)
    with pytest.raises(ConfigError, match=r"config.yaml: key seed"):
        validate_config({**base, "seed": "x"}, schema, sources=sources)


@pytest.mark.parametrize("how", ["read_only", "file_in_the_way"])
def test_an_unwritable_results_folder_is_caught_by_check_and_doctor(tmp_path, monkeypatch, capsys, how):
    import tempfile

    import yaml

    from audiofold.cli import main as cli
    from audiofold.cli.doctor import run_checks

    from conftest import ROOT

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["results_dir"] = str(tmp_path / "results")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    assert cli(["check", "c.yaml"]) == 0
    if how == "file_in_the_way":
        (tmp_path / "results").write_text("")
    else:
        (tmp_path / "results").mkdir()
        real = tempfile.TemporaryFile

        def read_only_mount(*args, dir=None, **kwargs):  # root passes chmod bits; a read-only mount refuses all
            if dir is not None and Path(dir) == tmp_path / "results":
                raise OSError(30, "Read-only file system")
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "TemporaryFile", read_only_mount)
    assert cli(["check", "c.yaml"]) == 1
    err = capsys.readouterr().err
    assert ("Read-only file system" if how == "read_only" else "is not a folder") in err
    results = {c.name: c for c in run_checks(tmp_path / "c.yaml")}["results"]
    assert results.ok is False and "results" in results.detail
