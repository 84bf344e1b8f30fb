"""Pseudo-groups through Snakemake: the auto_groups step joins the graph only without group and fold
columns, and on the demo clips it makes the folds (resemblyzer embeddings, clusters, prepare)."""

import pandas as pd
import pytest
import yaml

from audiofold.auto_groups import DEFAULT_THRESHOLD
from audiofold.io import read_json

from conftest import small_config, snakemake


def _rules(workdir, config):
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return snakemake(workdir, "--list-rules").stdout.split()


@pytest.mark.parametrize(
    ("demo", "auto", "group_column", "fold_column", "in_graph"),
    [
        (False, "auto", None, None, True),
        (False, "auto", "speaker", None, False),  # a real group column: nothing changes
        (False, "auto", None, "fold", False),  # predefined folds: nothing changes
        (True, "auto", None, None, False),  # the demo's clips are independent by construction
    ],
)
def test_the_auto_groups_step_runs_only_without_group_and_fold_columns(
    tmp_path, demo, auto, group_column, fold_column, in_graph
):
    config = small_config("regression")
    config["demo"]["enabled"] = demo
    config["cv"]["auto_groups"] = auto
    config["data"].update(group_column=group_column, fold_column=fold_column)
    assert ("auto_groups" in _rules(tmp_path, config)) == in_graph


def test_a_backbone_named_like_the_steps_own_embeddings_is_a_clear_error(tmp_path):
    config = small_config("regression")
    config["demo"]["enabled"] = False
    config["backbones"]["auto_groups"] = {"type": "logmel"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    failed = snakemake(tmp_path, "--list-rules", check=False)
    assert failed.returncode != 0
    assert "backbones.auto_groups: the name is taken" in failed.stdout + failed.stderr


@pytest.mark.e2e
def test_workflow_makes_folds_from_pseudo_groups(workdir):
    """The real step on the demo clips: resemblyzer embeddings, clusters, prepare's folds (no training)."""
    config = small_config("regression")
    config["cv"]["auto_groups"] = True
    config["audio"] = {**config["audio"], "shard_clips": 20}  # several training chunks
    wd = workdir(config)
    snakemake(wd, "--cores", "2", "results/task.json")
    groups = pd.read_csv(wd / "results/validation/auto_groups.csv", dtype=str)
    summary = read_json(wd / "results/validation/auto_groups.json")
    task = read_json(wd / "results/task.json")
    assert len(groups) == config["demo"]["n_train"] == summary["n_clips"]
    assert summary["backbone"] == "resemblyzer" and summary["threshold"] == DEFAULT_THRESHOLD
    assert task["auto_groups"]["n_groups"] == groups["group"].nunique()
    # embedded by embed jobs, one per training chunk, as any backbone (cached, restartable, O(chunks) inputs)
    chunks = pd.read_csv(wd / "results/validation/clips.csv", dtype=str).query("split == 'train'")["chunk"]
    shards = sorted(p.stem for p in (wd / "results/embeddings/auto_groups").glob("*.npz"))
    assert shards == sorted(chunks.unique()) and len(shards) > 1
    folds = pd.read_csv(wd / "results/folds.csv", dtype=str).merge(groups, on="id", suffixes=("", "_auto"))
    if task["auto_groups"]["used"]:
        assert folds.groupby("group_auto")["fold"].nunique().max() == 1
    else:
        assert "pseudo-groups not used" in task["auto_groups"]["why"]
    # a seed change remakes the folds without re-embedding or re-clustering
    plan = snakemake(wd, "-n", "results/task.json", "--config", "seed=1").stdout
    assert "prepare" in plan and "auto_groups" not in plan.replace("validation/auto_groups", "")
