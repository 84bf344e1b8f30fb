import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audiofold.clips import list_clips
from audiofold.errors import DataError
from audiofold.io import load_npz, read_json
from audiofold.prepare import prepare
from audiofold.tasks import load_task

from helpers import make_rating_data


def test_clip_list_has_paths_and_chunks_independent_of_folds(tmp_path):
    config = make_rating_data(tmp_path)
    clips = list_clips(config["data"], shard_clips=4)
    assert clips["id"].iloc[0] == "0000"  # leading zeros kept
    assert (clips["split"] == "train").sum() == 24 and (clips["split"] == "test").sum() == 5
    assert set(clips.loc[clips.split == "train", "chunk"]) <= {f"train{c}" for c in range(6)}
    assert set(clips.loc[clips.split == "test", "chunk"]) <= {"test0", "test1"}
    assert clips["path"].str.endswith((".wav", ".flac", ".ogg")).all()
    assert "fold" not in clips.columns


def test_prepare_writes_task_folds_and_targets_without_skipped_rows(tmp_path):
    config = make_rating_data(tmp_path)
    summary = prepare(config, tmp_path / "results", skipped={"0003"})
    assert summary["n_train"] == 24 and summary["n_test"] == 5 and summary["n_skipped"] == 1
    assert not (tmp_path / "results/manifest.csv").exists()
    assert len(pd.read_csv(tmp_path / "results/folds.csv")) == 24  # folds are made on every row
    assert "0003" not in load_npz(tmp_path / "results/targets.npz")["ids"].tolist()
    task = load_task(tmp_path / "results/task.json")
    assert task.kind == "regression" and task.scale == {"min": 0.0, "max": 4.5, "step": 0.5}
    targets = load_npz(tmp_path / "results/targets.npz")
    assert targets["y"].shape == (23, 1) and set(targets["fold"]) == {0, 1, 2}
    assert any("id column" in line for line in read_json(tmp_path / "results/task.json")["inferred"])


def test_groups_stay_in_one_fold(tmp_path):
    config = make_rating_data(tmp_path, groups=True)
    prepare(config, tmp_path / "results")
    folds = pd.read_csv(tmp_path / "results/folds.csv")
    assert folds.groupby("group")["fold"].nunique().max() == 1
    targets = load_npz(tmp_path / "results/targets.npz")  # heads' inner CV keeps the groups together too
    np.testing.assert_array_equal(targets["group"], folds["group"].astype(str).to_numpy())


def test_configured_scale_replaces_the_inferred_one_and_bounds_the_labels(tmp_path):
    config = make_rating_data(tmp_path)  # labels 0 .. 4.5: inference would clip predictions there
    config["task"]["scale"] = {"min": 0, "max": 10, "step": 0.5}
    summary = prepare(config, tmp_path / "results")
    assert load_task(tmp_path / "results/task.json").scale == {"min": 0, "max": 10, "step": 0.5}
    assert not any("rating scale" in line for line in summary["inferred"])
    config["task"]["scale"] = {"min": 0, "max": 4, "step": 0.5}
    with pytest.raises(DataError, match=r"row 5 \(id '0003'\): label 'rating' = 4.5 is above the declared maximum 4"):
        prepare(config, tmp_path / "results2")


def test_more_folds_than_groups_names_both_numbers_and_the_key(tmp_path):
    config = make_rating_data(tmp_path, groups=True)  # 6 speakers
    config["cv"]["n_folds"] = 8
    with pytest.raises(DataError, match=r"6 groups, fewer than cv.n_folds=8.*cv.n_folds to at most 6"):
        prepare(config, tmp_path / "results")


def test_missing_audio_names_row_and_tried_files(tmp_path):
    config = make_rating_data(tmp_path)
    next((tmp_path / "audio").glob("0005.*")).unlink()
    with pytest.raises(DataError, match=r"row 7: no audio file for id '0005'.*tried 0005, 0005.wav"):
        list_clips(config["data"])


def test_ids_escaping_the_audio_folder_are_refused(tmp_path):
    config = make_rating_data(tmp_path)
    sf.write(tmp_path / "secret.wav", np.zeros(10, dtype=np.float32), 8000)
    train = pd.read_csv(tmp_path / "train.csv", dtype=str)
    train.loc[0, "clip_id"] = "../secret"
    train.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(DataError, match="outside the audio folder"):
        list_clips(config["data"])


def test_duplicate_ids_are_reported_with_rows(tmp_path):
    config = make_rating_data(tmp_path)
    train = pd.read_csv(tmp_path / "train.csv", dtype=str)
    train.loc[3, "clip_id"] = train.loc[1, "clip_id"]
    train.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(DataError, match="rows 3 and 5"):
        prepare(config, tmp_path / "results")
