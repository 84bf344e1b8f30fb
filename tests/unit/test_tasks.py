import numpy as np
import pandas as pd
import pytest

from audiofold.errors import DataError
from audiofold.tables import raw_column, read_table
from audiofold.tasks import TaskSpec, infer_step, infer_task


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_read_table_keeps_leading_zeros_and_types_numbers(tmp_path):
    df = read_table(write(tmp_path, "t.csv", "utt_id,score\n000123,3.5\n000124,4\n"))
    assert raw_column(df, "utt_id") == ["000123", "000124"]
    assert df["score"].tolist() == [3.5, 4.0]


def test_read_table_sniffs_semicolons_and_latin1(tmp_path):
    df = read_table(write(tmp_path, "t.csv", "id;label\nà;chien\nb;chat\n", encoding="latin-1"))
    assert list(df.columns) == ["id", "label"] and raw_column(df, "id") == ["à", "b"]


def test_read_table_missing_file_names_it(tmp_path):
    with pytest.raises(DataError, match="nope.csv not found"):
        read_table(tmp_path / "nope.csv", "training table")


def test_infer_rating_regression_with_step():
    train = pd.DataFrame({"filename": ["a", "b", "c", "d"], "label": [0.0, 1.5, 3.0, 5.0]})
    test = pd.DataFrame({"filename": ["e"]})
    spec, notes = infer_task(train, test)
    assert spec.kind == "regression" and spec.id_column == "filename" and spec.label_columns == ["label"]
    assert spec.scale == {"min": 0.0, "max": 5.0, "step": 0.5}
    assert any("rating scale" in n for n in notes)


def test_infer_multitarget_classification_multilabel():
    ids = [f"c{i}" for i in range(6)]
    va = pd.DataFrame({"clip_id": ids, "valence": np.linspace(1, 9, 6) + 0.013, "arousal": np.linspace(2, 8, 6)})
    spec, _ = infer_task(va, pd.DataFrame({"clip_id": ["x"]}))
    assert spec.kind == "multitarget" and spec.label_columns == ["valence", "arousal"] and spec.scale["step"] is None

    cls = pd.DataFrame({"clip_id": ids, "scene": ["dog", "cat", "dog", "rain", "cat", "dog"]})
    spec, _ = infer_task(cls, pd.DataFrame({"clip_id": ["x"]}))
    assert spec.kind == "classification" and spec.classes == ["cat", "dog", "rain"]
    assert spec.encode_targets(cls).tolist() == [1, 0, 1, 2, 0, 1]

    ml = pd.DataFrame({"fname": ids, "labels": ["a,b", "b", "c;a", "a", "b,c", "c"]})
    sample = pd.DataFrame({"fname": ["x"], "a": [0], "b": [0], "c": [0]})
    spec, _ = infer_task(ml, None, sample)
    assert spec.kind == "multilabel" and spec.classes == ["a", "b", "c"]
    y = spec.encode_targets(ml)
    assert y.tolist()[2] == [1, 0, 1]  # mixed ';' and ',' separators both split


def test_integer_class_codes_become_classes():
    df = pd.DataFrame({"filename": list("abcdef"), "class_id": [0, 1, 2, 0, 1, 2]})
    spec, _ = infer_task(df, pd.DataFrame({"filename": ["z"]}))
    assert spec.kind == "classification" and spec.classes == ["0", "1", "2"]
    assert spec.encode_targets(df).tolist() == [0, 1, 2, 0, 1, 2]


def test_overrides_win_over_inference():
    df = pd.DataFrame({"key": list("abcd"), "y": [1, 2, 3, 4], "other": [5, 6, 7, 8]})
    spec, notes = infer_task(
        df, None, None, id_column="key", label_columns=["y"], kind="regression", scale={"min": 0, "max": 10, "step": 1}
    )
    assert spec.label_columns == ["y"] and spec.scale["max"] == 10 and notes == []


def test_unknown_multilabel_tokens_are_listed_with_rows():
    spec = TaskSpec("multilabel", "fname", ["labels"], classes=["a", "b"], label_sep=",")
    df = pd.DataFrame({"fname": ["x", "y"], "labels": ["a,zz", "b,qq"]})
    with pytest.raises(DataError, match=r"2 unknown label\(s\).*'zz'.*row 2.*'qq'.*row 3"):
        spec.encode_targets(df)


def test_non_numeric_regression_label_names_row_and_id():
    spec = TaskSpec("regression", "id", ["score"], scale={"min": 0, "max": 5, "step": 0.5})
    df = pd.DataFrame({"id": ["a", "b"], "score": ["1.5", "high"]})
    with pytest.raises(DataError, match=r"row 3 \(id 'b'\).*'high'"):
        spec.encode_targets(df)


@pytest.mark.parametrize("values, step", [([0, 0.5, 2], 0.5), ([1, 2, 5], 1.0), ([0.1, 0.7], 0.1), ([0.33, 1.0], None)])
def test_infer_step(values, step):
    assert infer_step(np.asarray(values, dtype=float)) == step
