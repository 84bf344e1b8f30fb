"""run_rule: the rule log says what ran, how long it took and what it wrote; user errors exit 1;
every file output gets a *.meta.json saying what made it."""

import os
import types

import numpy as np
import pandas as pd
import pytest

from audiofold.errors import DataError
from audiofold.io import read_json, save_npz, write_meta
from audiofold.rulekit import run_rule


def _smk(tmp_path, outputs):
    return types.SimpleNamespace(
        log=[str(tmp_path / "logs" / "step.log")],
        threads=1,
        rule="step",
        wildcards={"backbone": "logmel"},
        output=[str(p) for p in outputs],
    )


def test_log_names_rule_duration_and_outputs(tmp_path):
    out = tmp_path / "a.bin"
    smk = _smk(tmp_path, [out])
    run_rule(smk, lambda s: out.write_bytes(b"x" * 2_000_000))
    text = (tmp_path / "logs" / "step.log").read_text()
    assert "rule step {'backbone': 'logmel'} started" in text
    assert "rule step done in " in text and f"1 output(s): {out} (2.00 MB)" in text


def test_user_error_exits_1_with_message_in_log(tmp_path):
    def fail(_):
        raise DataError("train.csv, row 3: bad label")

    with pytest.raises(SystemExit) as exc:
        run_rule(_smk(tmp_path, []), fail)
    assert exc.value.code == 1
    assert "train.csv, row 3: bad label" in (tmp_path / "logs" / "step.log").read_text()


def test_every_file_output_gets_a_sidecar_saying_what_made_it(tmp_path):
    preds, table = tmp_path / "oof" / "preds.npz", tmp_path / "oof" / "table.csv"
    png, csv, folder = tmp_path / "plots" / "x.png", tmp_path / "plots" / "x.csv", tmp_path / "audio"
    stale = tmp_path / "oof" / "table.meta.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"left": "by an earlier run"}')
    os.utime(stale, (0, 0))
    smk = _smk(tmp_path, [preds, table, png, csv, folder])
    smk.input = ["results/embeddings/logmel/fold0.npz", "results/task.json"]
    smk.params = {"head": {"type": "ridge", "alpha": 1.0}, "seed": 42}

    def main(_):
        save_npz(preds, oof=np.zeros((7, 3), dtype=np.float32), ids=np.array(list("abcdefg")))
        write_meta(preds, fold=2)  # the step's own sidecar: its keys stay
        pd.DataFrame({"id": ["001", "002"], "y": [1, 2]}).to_csv(table, index=False)
        png.parent.mkdir()
        png.write_bytes(b"png")
        csv.write_text("a\n1\n")
        folder.mkdir()

    run_rule(smk, main)
    meta = read_json(tmp_path / "oof" / "preds.meta.json")
    assert meta["step"] == "step" and meta["wildcards"] == {"backbone": "logmel"} and meta["fold"] == 2
    assert meta["params"] == smk.params and len(meta["params_hash"]) == 12
    assert meta["inputs"] == smk.input and meta["arrays"] == {"oof": [7, 3], "ids": [7]}
    table_meta = read_json(stale)
    assert "left" not in table_meta and table_meta["rows"] == 2 and table_meta["columns"] == ["id", "y"]
    shared = read_json(tmp_path / "plots" / "x.meta.json")  # x.png and x.csv: one sidecar naming both
    assert [f["file"] for f in shared["files"]] == ["x.png", "x.csv"]
    assert not (tmp_path / "audio.meta.json").exists()


def test_optional_input_is_the_path_or_none():
    from snakemake.iocontainers import InputFiles

    from audiofold.rulekit import optional_input

    class Job:
        input = InputFiles(fromdict={"train_csv": "a.csv", "test_csv": [], "sample_submission": ["b.csv"]})

    assert optional_input(Job, "train_csv") == "a.csv"
    assert optional_input(Job, "test_csv") is None
    assert optional_input(Job, "sample_submission") == "b.csv"
    assert optional_input(Job, "not_declared") is None
