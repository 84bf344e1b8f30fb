"""Embedding chunks are independent of folds, and the embedding cache is shared across projects."""

import re

import numpy as np
import pytest
import yaml

from audiofold.io import load_npz

from conftest import demo_config, jobs_to_run, snakemake

# One worker runs the whole module, so its module-scoped run is made once.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("scale")]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, finished_runs):
    """The small regression demo, run in full; its cache folder (results/cache) is another project's too."""
    config = demo_config("regression")
    wd = finished_runs.copy(config, tmp_path_factory.mktemp("first"))
    return wd, config, wd / "results/cache"


@pytest.mark.parametrize(
    "change",
    [{"cv": {"n_folds": 4}}, {"seed": 7}, {"data": {"group_column": "clip_id"}}],
    ids=["n_folds", "seed", "group_column"],
)
def test_fold_changes_rerun_nothing_upstream_of_train(first_run, change):
    wd, config, _ = first_run
    (wd / "change.yaml").write_text(yaml.safe_dump(change))
    planned = jobs_to_run(wd, "--configfile", str(wd / "config.yaml"), str(wd / "change.yaml"))
    assert planned.get("prepare") == 1 and planned.get("train")
    assert not {"demo_data", "validate", "decode", "embed"} & set(planned), planned


def test_another_project_on_the_same_clips_reuses_every_cached_embedding(first_run, tmp_path):
    wd, config, cache = first_run
    second = {
        **config,
        "cache_dir": str(cache),
        "demo": {**config["demo"], "enabled": False},
        "heads": {"knn5": {**config["heads"]["knn"], "k": 5}},
        # the demo had no pseudo-groups (clips independent by construction): the same embedding work here
        "cv": {**config["cv"], "auto_groups": False},
    }
    second["data"] = {
        **config["data"],
        **{
            k: str(wd / config["data"][k])
            for k in ("train_csv", "test_csv", "sample_submission", "train_audio_dir", "test_audio_dir")
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(second, sort_keys=False))
    snakemake(tmp_path, "--cores", "2")

    logs = sorted((tmp_path / "results/logs/embed").rglob("*.log"))
    assert len(logs) == len(list((wd / "results/embeddings").rglob("*.npz")))
    for log in logs:
        hits, misses = map(int, re.search(r"(\d+) hit\(s\), (\d+) miss\(es\)", log.read_text()).groups())
        assert hits > 0 and misses == 0, log
    for emb in sorted((wd / "results/embeddings").rglob("*.npz")):
        a, b = load_npz(emb), load_npz(tmp_path / "results" / emb.relative_to(wd / "results"))
        assert a["ids"].tolist() == b["ids"].tolist()
        np.testing.assert_array_equal(a["X"], b["X"])
    assert (tmp_path / "results/submission.csv").is_file()
