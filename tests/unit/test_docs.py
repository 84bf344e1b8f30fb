"""The docs stay true: docs/CONFIG.md matches the schema, and the README's commands exist and run."""

import re
import shlex

import numpy as np
import pandas as pd
import pytest

from audiofold.cli import build_parser
from audiofold.cli import main as cli
from audiofold.config import load_schema, schema_reference

from conftest import ROOT
from helpers import make_folder

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _fenced_commands() -> list[str]:
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", README, flags=re.S)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_config_reference_is_in_sync_with_the_schema():
    expected = schema_reference(load_schema())
    assert (ROOT / "docs" / "CONFIG.md").read_text(encoding="utf-8") == expected, (
        "docs/CONFIG.md is stale: run `.venv/bin/audiofold check --reference > docs/CONFIG.md`"
    )
    for key in ("data.train_csv", "backbones.<name>.tta.n_crops", "blend.step"):
        assert f"| `{key}` |" in expected
    assert "docs/CONFIG.md" in README


def test_readme_commands_exist():
    commands = _fenced_commands()
    make_targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))
    parser = build_parser()
    seen = {"make": 0, "audiofold": 0}
    for command in commands:
        argv = shlex.split(command)
        tool = argv[0].rsplit("/", 1)[-1]
        if tool == "make":
            assert argv[1] in make_targets, command
            seen["make"] += 1
        elif tool == "audiofold":
            parser.parse_args(argv[1:])  # SystemExit on an unknown command or flag
            seen["audiofold"] += 1
    assert seen["make"] >= 2 and seen["audiofold"] >= 3, commands
    assert commands[:2] == ["make run", "make test"], "the two set-up commands come first"


def test_readme_own_data_walkthrough_runs(tmp_path, monkeypatch, capsys):
    """The README's `audiofold` lines, run as written on a small Kaggle-style folder called data/."""
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"id": [f"tr{i:03d}" for i in range(24)], "rating": rng.integers(0, 11, 24) / 2})
    make_folder(tmp_path / "data", train, [f"te{i:03d}" for i in range(6)])
    monkeypatch.chdir(tmp_path)
    ran = 0
    for command in _fenced_commands():
        argv = shlex.split(command)
        if argv[0].endswith("audiofold"):
            assert cli(argv[1:]) == 0, command
            ran += 1
    assert ran >= 3 and (tmp_path / "my.yaml").is_file()
    assert "nothing computed yet" in capsys.readouterr().out


@pytest.mark.parametrize("config", ["config.yaml"])
def test_audiofold_check_on_the_project_config(config, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert cli(["check", config]) == 0
    assert "valid" in capsys.readouterr().out


def test_the_readme_diagram_names_every_step():
    """Every rule of the workflow (bar the `all` targets) stands in the README's step diagram."""
    rules = set()
    for smk in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        rules |= set(re.findall(r"^\s*(?:rule|checkpoint) (\w+):", smk.read_text(encoding="utf-8"), flags=re.M))
    rules -= {"all", "embed_all"}
    diagram = README.split("Every step", 1)[1].split("```", 2)[1]
    named = set(re.findall(r"\b\w+\b", diagram))
    assert len(rules) >= 20 and not rules - named, f"steps missing from the README diagram: {sorted(rules - named)}"
