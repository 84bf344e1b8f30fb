"""Pseudo-groups (cv.auto_groups): clips of K hidden speakers are found as about K groups, the folds keep
each inside one fold, and a real group column (or too few clusters) leaves the folds as they were."""

import numpy as np
import pandas as pd
import pytest

from audiofold.auto_groups import DEFAULT_THRESHOLD, auto_groups, cluster_groups, purity, read_auto_groups
from audiofold.io import read_json
from audiofold.prepare import prepare

K = 8


def speaker_embeddings(n_per_speaker=12, seed=0, dim=64):
    """Unit-norm embeddings of K "speakers": a shared direction (every voice has much in common), a
    speaker direction and per-clip noise, so clips of one speaker lie about 0.1 apart in cosine
    distance and speakers about 0.5 apart, roughly what resemblyzer gives for distinct adult voices."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal(dim)
    shared /= np.linalg.norm(shared)
    speakers = rng.standard_normal((K, dim))
    speakers /= np.linalg.norm(speakers, axis=1, keepdims=True)
    true = np.repeat(np.arange(K), n_per_speaker)
    X = 0.7 * shared + 0.7 * speakers[true] + 0.33 * rng.standard_normal((len(true), dim)) / np.sqrt(dim)
    order = rng.permutation(len(true))  # clips of one speaker are not neighbours in the table
    return X[order], true[order]


def test_clips_of_k_speakers_are_found_as_about_k_groups():
    X, true = speaker_embeddings()
    found = cluster_groups(X, DEFAULT_THRESHOLD)
    quality = purity(found, true)
    assert K - 1 <= quality["n_clusters"] <= K + 1
    assert quality["completeness"] >= 0.95 and quality["purity"] >= 0.95
    np.testing.assert_array_equal(found, cluster_groups(X, DEFAULT_THRESHOLD))  # deterministic
    # a tiny threshold splits every clip off, a huge one merges all: the threshold is what cuts
    assert cluster_groups(X, 1e-6).max() + 1 == len(X) and cluster_groups(X, 1.9).max() == 0


def test_above_the_clustering_cap_a_sample_is_clustered_and_the_rest_joins_it(monkeypatch):
    import audiofold.auto_groups as autogroups

    X, true = speaker_embeddings(n_per_speaker=30)
    monkeypatch.setattr(autogroups, "MAX_CLUSTERED_ROWS", 100)
    found = autogroups.cluster_groups(X, DEFAULT_THRESHOLD)
    assert len(found) == len(X) and purity(found, true)["completeness"] >= 0.95


def prepare_config(tmp_path, n, group_column=None, n_folds=4):
    ids = [f"c{i:03d}" for i in range(n)]
    train = pd.DataFrame({"clip_id": ids, "rating": np.tile([1.0, 2.0, 3.0, 4.0], n // 4)})
    if group_column:
        train[group_column] = [f"s{i % 5}" for i in range(n)]
    train.to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"clip_id": ["t0", "t1"]}).to_csv(tmp_path / "test.csv", index=False)
    return ids, {
        "seed": 0,
        "data": {
            "train_csv": str(tmp_path / "train.csv"),
            "test_csv": str(tmp_path / "test.csv"),
            "sample_submission": None,
            "id_column": "clip_id",
            "label_columns": ["rating"],
            "group_column": group_column,
            "fold_column": None,
            "path_column": None,
        },
        "task": {"kind": "regression"},
        "cv": {"n_folds": n_folds},
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hidden_speakers_never_straddle_folds(tmp_path, seed):
    X, true = speaker_embeddings(seed=seed)
    ids, config = prepare_config(tmp_path, len(X))
    config["seed"] = seed
    auto_groups(ids, X, DEFAULT_THRESHOLD, "resemblyzer", tmp_path / "groups.csv", tmp_path / "groups.json")
    summary = prepare(
        config, tmp_path / "out", auto_groups=read_auto_groups(tmp_path / "groups.csv", tmp_path / "groups.json")
    )
    folds = pd.read_csv(tmp_path / "out/folds.csv", dtype={"id": str})
    assert pd.Series(folds["fold"].to_numpy()).groupby(true).nunique().max() == 1  # no speaker in two folds
    assert summary["auto_groups"]["used"] and K - 1 <= summary["auto_groups"]["n_groups"] <= K + 1
    assert "pseudo-groups (cv.auto_groups)" in summary["fold_scheme"]
    assert f"into {summary['auto_groups']['n_groups']} pseudo-groups" in summary["auto_groups"]["why"]
    assert read_json(tmp_path / "out/task.json")["auto_groups"]["used"]


def test_clusters_that_cannot_make_the_folds_are_not_used(tmp_path):
    X, _ = speaker_embeddings()
    ids, config = prepare_config(tmp_path, len(X), n_folds=4)
    found = {"backbone": "resemblyzer", "threshold": 0.3, "n_clips": len(ids), "n_groups": 2}
    two = {clip: f"g{i % 2}" for i, clip in enumerate(ids)}  # two huge clusters: not enough for 4 folds
    summary = prepare(config, tmp_path / "out", auto_groups=(two, found))
    assert not summary["auto_groups"]["used"] and "fewer than cv.n_folds=4" in summary["auto_groups"]["why"]
    plain = prepare(config, tmp_path / "plain")  # the folds are the ungrouped ones
    assert summary["fold_scheme"] == plain["fold_scheme"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out/folds.csv"), pd.read_csv(tmp_path / "plain/folds.csv"))


def test_a_real_group_column_wins_over_pseudo_groups(tmp_path):
    X, _ = speaker_embeddings()
    ids, config = prepare_config(tmp_path, len(X), group_column="speaker")
    auto = (
        {clip: f"g{i}" for i, clip in enumerate(ids)},
        {"backbone": "x", "threshold": 0.3, "n_clips": len(ids), "n_groups": len(ids)},
    )
    with_auto = prepare(config, tmp_path / "a", auto_groups=auto)
    without = prepare(config, tmp_path / "b")
    assert "auto_groups" not in with_auto and with_auto == without
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a/folds.csv"), pd.read_csv(tmp_path / "b/folds.csv"))
