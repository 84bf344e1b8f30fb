"""`audiofold init` then Snakemake: a config written to a subfolder runs from the project folder."""

import pandas as pd

from audiofold.cli import main as cli
from audiofold.config import load_config

from conftest import snakemake
from helpers import clip_ids, make_folder


def test_config_written_to_a_subfolder_runs_from_the_project_folder(tmp_path, monkeypatch):
    """Snakemake resolves relative paths against the folder it runs in, not the config's folder."""
    train = pd.DataFrame({"id": clip_ids("a", 20), "rating": [1.0, 2.0, 3.0, 4.0] * 5})
    make_folder(tmp_path / "data", train, clip_ids("b", 4))
    monkeypatch.chdir(tmp_path)
    assert cli(["init", "data", "--output", "configs/my.yaml"]) == 0
    config = load_config("configs/my.yaml")
    assert config["data"]["train_csv"] == "data/train.csv" and config["data"]["train_audio_dir"] == "data/train_audio"
    assert (tmp_path / config["data"]["train_csv"]).is_file()
    plan = snakemake(tmp_path, "-n", configfile="configs/my.yaml").stdout
    assert "prepare" in plan and "submit" in plan

    elsewhere = tmp_path / "project"  # data outside the project folder: absolute paths
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli(["init", "../data", "--output", "my.yaml"]) == 0
    assert load_config("my.yaml")["data"]["train_csv"] == str((tmp_path / "data" / "train.csv").resolve())
