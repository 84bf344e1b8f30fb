"""run_rule: the rule log says what ran, how long it took and what it wrote; user errors exit 1."""

import types

import pytest

from audiofold.errors import DataError
from audiofold.rulekit import run_rule


def _smk(tmp_path, outputs):
    return types.SimpleNamespace(log=[str(tmp_path / "logs" / "step.log")], threads=1, rule="step",
                                 wildcards={"backbone": "logmel"}, output=[str(p) for p in outputs])


def test_log_names_rule_duration_and_outputs(tmp_path):
    out = tmp_path / "a.npz"
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
