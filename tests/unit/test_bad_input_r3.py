"""Bad input, round 3 (issue 28): one test per case, named as in docs/BAD_INPUT.md (rows marked r3).

Library functions are called as the Snakefile and `audiofold check` call them; the cases that only
Snakemake shows (a results folder that is a file, ids with braces) are in test_bad_input_workflow.py.
"""

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from audiofold.backbones import build_backbone
from audiofold.cache import EmbeddingCache, config_key
from audiofold.cli import main as cli
from audiofold.cli.scaffold import scaffold
from audiofold.config import check_output_folders, load_schema, validate_config
from audiofold.embed import embed_clips
from audiofold.errors import ConfigError
from audiofold.io import load_npz
from audiofold.resultsdir import MARKER
from audiofold.submit import make_submission, validate_submission
from audiofold.tables import read_table
from audiofold.tasks import infer_task

from conftest import ROOT
from helpers import make_folder, noise_clips


def project_config(**overrides) -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.update(overrides)
    return config


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` with its size and mtime: proof that nothing there was written."""
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


# ---- results folder ----------------------------------------------------------------------------
@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder, tmp/home/work/project, holding a user's own submission.csv; run from there."""
    home = tmp_path / "home"
    project = home / "work" / "project"
    project.mkdir(parents=True)
    (project / "submission.csv").write_text("id,label\nmine,1\n")
    (home / "work/submission.csv").write_text("id,label\nalso mine,1\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(project)
    return project


@pytest.mark.parametrize(
    ("results_dir", "said"),
    [
        ("..", "a folder above the project folder"),
        ("/", "is the filesystem root"),
        ("HOME", "is your home folder"),
        (".", "is the project folder"),
        ("sub/../..", "a folder above the project folder"),
    ],
)
def test_a_results_folder_that_is_root_home_or_above_the_project_is_refused(project, results_dir, said):
    results_dir = str(project.parents[1]) if results_dir == "HOME" else results_dir
    (project / "mine.yaml").write_text(yaml.safe_dump({"results_dir": results_dir}))
    before = snapshot(project.parents[1])
    with pytest.raises(ConfigError) as err:
        check_output_folders(
            project_config(results_dir=results_dir), [project], sources=["mine.yaml", "config.yaml"], mark=True
        )
    assert str(err.value).startswith("mine.yaml: key results_dir:") and said in str(err.value)
    assert snapshot(project.parents[1]) == before


def test_a_results_folder_set_on_the_command_line_is_blamed_on_it(project):
    with pytest.raises(ConfigError, match=r"^--config: key results_dir: '\.\.'"):
        check_output_folders(project_config(results_dir=".."), [project], command_line={"results_dir": ".."})


def test_audiofold_check_refuses_a_results_folder_above_the_project(project, capsys):
    (project / "c.yaml").write_text(yaml.safe_dump(project_config(results_dir="..")))
    assert cli(["check", "c.yaml"]) == 1
    assert "c.yaml: key results_dir: '..'" in capsys.readouterr().err


def test_a_cache_folder_that_is_the_project_folder_is_refused(project):
    with pytest.raises(ConfigError, match=r"key cache_dir: '\.' is the project folder"):
        check_output_folders(project_config(cache_dir="."), [project])
    check_output_folders(project_config(cache_dir=str(project.parent / "shared-cache")), [project])


def test_a_non_empty_folder_audiofold_did_not_make_is_refused_unless_adopted(project):
    users = project / "out"
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    before = snapshot(users)
    with pytest.raises(ConfigError) as err:
        check_output_folders(project_config(results_dir="out"), [project], mark=True)
    message = str(err.value)
    assert "key results_dir: 'out' holds 1 entry (notes.txt)" in message and "results_dir_adopt: true" in message
    assert snapshot(users) == before

    check_output_folders(project_config(results_dir="out", results_dir_adopt=True), [project], mark=True)
    assert (users / MARKER).is_file() and (users / "notes.txt").read_text() == "mine"
    check_output_folders(project_config(results_dir="out"), [project])  # marked: no flag needed any more


def test_a_new_or_empty_results_folder_is_made_and_marked(project):
    check_output_folders(project_config(results_dir="new/results"), [project], mark=True)
    assert (project / "new/results" / MARKER).is_file()
    (project / "new/results/task.json").write_text("{}")  # a run's output: still audiofold's folder
    check_output_folders(project_config(results_dir="new/results"), [project])
    earlier = project / "earlier"  # a results folder from before the marker existed
    (earlier / "validation").mkdir(parents=True)
    (earlier / "validation/report.json").write_text("{}")
    check_output_folders(project_config(results_dir="earlier"), [project])


def test_a_results_folder_that_is_a_file_is_a_config_error(project):
    (project / "results").write_text("a file")
    with pytest.raises(ConfigError, match=r"key results_dir: .*results is not a folder"):
        check_output_folders(project_config(), [project], mark=True)
    assert (project / "results").read_text() == "a file"


def test_a_read_only_results_folder_is_named_by_the_start_up_check(project, monkeypatch):
    """The Snakefile's start-up check (check_output_folders) says it before Snakemake's own
    "Failed to create output directory". Root passes chmod bits, so the mount is simulated."""
    (project / "results").mkdir()
    real = tempfile.TemporaryFile

    def read_only_mount(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == project / "results":
            raise OSError(30, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only_mount)
    with pytest.raises(ConfigError, match=r"key results_dir: cannot write to .*results \(Read-only file system\)"):
        check_output_folders(project_config(), [project], mark=True)
    assert not (project / "results" / MARKER).exists()


# ---- the embedding cache -----------------------------------------------------------------------
def test_a_corrupt_cache_entry_is_a_miss_recomputed_and_replaced(tmp_path, caplog):
    rows = noise_clips(tmp_path, n=3)
    config = {"type": "logmel", "sample_rate": 16000, "n_mels": 16}
    backbone = build_backbone("logmel", dict(config))
    key = config_key(config, 5.0)
    embed_clips(rows, backbone, tmp_path / "a.npz", max_seconds=5.0, cache=EmbeddingCache(tmp_path / "cache", key))
    cache = EmbeddingCache(tmp_path / "cache", key)
    (pack,) = cache.packs.glob("*.npz")  # the chunk's one pack
    pack.write_bytes(pack.read_bytes()[:100])  # cut short, as by a full disk or a killed copy

    with caplog.at_level(logging.WARNING, logger="audiofold.cache"):
        meta = embed_clips(rows, backbone, tmp_path / "b.npz", max_seconds=5.0, cache=cache)
    assert f"embedding cache pack {pack} is unreadable" in caplog.text
    assert meta["cache"] == {"dir": str(tmp_path / "cache"), "key": key, "hits": 0, "misses": 3}
    np.testing.assert_array_equal(load_npz(tmp_path / "b.npz")["X"], load_npz(tmp_path / "a.npz")["X"])
    assert load_npz(pack)["X"].shape == load_npz(tmp_path / "a.npz")["X"].shape  # replaced, whole
    assert not list(pack.parent.glob(".tmp-*"))


# ---- config files ------------------------------------------------------------------------------
def alias_bomb(levels: int, width: int = 9) -> str:
    """A YAML list whose aliases nest ``levels`` deep: a few lines, width**levels values once expanded."""
    lines = ["task:", "  classes:", f"    - &l0 [{', '.join(['x'] * width)}]"]
    lines += [f"    - &l{k} [{', '.join([f'*l{k - 1}'] * width)}]" for k in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_before_validating(tmp_path):
    (tmp_path / "bomb.yaml").write_text(alias_bomb(6))  # 531,441 values from 8 lines
    config = project_config(task=yaml.safe_load((tmp_path / "bomb.yaml").read_text())["task"])
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        validate_config(config, load_schema(), sources=[tmp_path / "bomb.yaml", "config.yaml"])
    assert time.perf_counter() - start < 5  # validating it walks every expanded value (minutes at 9 levels)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'bomb.yaml'}: key task: holds more than 100,000 values")
    assert len(message) < 400


def test_an_error_echoes_at_most_200_characters_of_a_value(tmp_path):
    config = project_config(cv={"n_folds": "9" * 100_000})
    with pytest.raises(ConfigError) as err:
        validate_config(config, load_schema())
    assert "key cv.n_folds: '999" in str(err.value) and "(100,0" in str(err.value)
    assert len(str(err.value)) < 400


def test_a_results_folder_error_echoes_at_most_200_characters_of_it(project):
    with pytest.raises(ConfigError) as err:
        check_output_folders(project_config(results_dir="r" * 5000), [project], mark=True)
    assert "key results_dir: cannot use 'rrr" in str(err.value) and len(str(err.value)) < 400


def test_a_wrong_type_in_a_configfile_is_blamed_on_that_file(tmp_path):
    (tmp_path / "mine.yaml").write_text("task: {classes: [[a, b]]}\n")
    config = project_config(task={"classes": [["a", "b"]]})
    with pytest.raises(ConfigError, match=r"^.*mine\.yaml: key task\.classes\.0: \['a', 'b'\] is not of type"):
        validate_config(config, load_schema(), sources=[tmp_path / "mine.yaml", ROOT / "config.yaml"])


# ---- init --------------------------------------------------------------------------------------
def test_a_sample_submission_text_column_is_no_class_and_is_copied(tmp_path):
    train = pd.DataFrame({"id": [f"tr{i}" for i in range(8)], "label": ["tone", "noise"] * 4})
    test_ids = ["te0", "te1", "te2"]
    sample = pd.DataFrame({"id": test_ids, "label": "tone", "Usage": ["Public", "Private", "Public"]})
    make_folder(tmp_path / "data", train, test_ids, sample)
    result = scaffold(tmp_path / "data", base_dir=tmp_path, fast=True)
    assert "classes" not in result.config["task"]
    assert any("['Usage'] hold text, not predictions" in note for note in result.notes)

    sample_table = read_table(tmp_path / "data/sample_submission.csv")
    spec, _ = infer_task(read_table(tmp_path / "data/train.csv"), None, sample_table)
    assert spec.kind == "classification" and spec.classes == ["noise", "tone"]
    P = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    sub = make_submission(test_ids, P, spec, sample_table)
    assert sub.to_dict("list") == {
        "id": test_ids,
        "label": ["noise", "tone", "noise"],
        "Usage": sample["Usage"].tolist(),
    }
    validate_submission(sub, sample_table, spec)


def test_constant_training_targets_say_to_set_task_scale_by_hand(tmp_path):
    train = pd.DataFrame({"id": [f"tr{i}" for i in range(6)], "score": [3.0] * 6})
    make_folder(tmp_path / "data", train, ["te0", "te1"])
    result = scaffold(tmp_path / "data", base_dir=tmp_path, kind="regression", fast=True)
    assert "scale" not in result.config["task"]
    assert any("set task.scale (min, max, step) by hand" in note for note in result.notes)
    config = project_config(task={"kind": "regression", "scale": {"min": 3.0, "max": 3.0}})
    with pytest.raises(ConfigError, match="min must be below max .* Set task.scale by hand"):
        validate_config(config, load_schema())
