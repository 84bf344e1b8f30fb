"""Data-making helpers that test modules of both tiers (tests/unit, tests/e2e) share; pyproject's
[tool.pytest.ini_options] pythonpath puts tests/ on sys.path, so `from helpers import ...` works from both."""

import numpy as np
import pandas as pd
import soundfile as sf


def _clip(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(seed).normal(0, 0.1, 1600).astype(np.float32), 16000)


def make_folder(
    root,
    train: pd.DataFrame,
    test_ids,
    sample: pd.DataFrame | None = None,
    ext="wav",
    train_sub="train_audio",
    test_sub="test_audio",
    test_csv=True,
):
    """A Kaggle-style folder: train.csv (and test.csv, sample_submission.csv), one short clip per id."""
    root.mkdir(parents=True, exist_ok=True)
    train.to_csv(root / "train.csv", index=False)
    if test_csv:
        pd.DataFrame({train.columns[0]: test_ids}).to_csv(root / "test.csv", index=False)
    if sample is not None:
        sample.to_csv(root / "sample_submission.csv", index=False)
    for i, clip in enumerate(train.iloc[:, 0]):
        _clip(root / train_sub / f"{clip}.{ext}", i)
    for i, clip in enumerate(test_ids):
        _clip(root / test_sub / f"{clip}.{ext}", 1000 + i)
    return root


def clip_ids(prefix, n):
    """prefix0000, prefix0001, ..."""
    return [f"{prefix}{i:04d}" for i in range(n)]


def make_rating_data(tmp_path, n=24, groups=False):
    """n rated clips (wav, flac, ogg) and 5 test clips in tmp_path, and the data config that reads them."""
    audio = tmp_path / "audio"
    audio.mkdir()
    ids = [f"{i:04d}" for i in range(n + 5)]
    for i, clip in enumerate(ids):
        ext = ["wav", "flac", "ogg"][i % 3]
        sf.write(audio / f"{clip}.{ext}", np.zeros(800, dtype=np.float32), 8000)
    train = pd.DataFrame({"clip_id": ids[:n], "rating": np.tile([0.0, 1.5, 3.0, 4.5], n // 4)})
    if groups:
        train["speaker"] = [f"s{i % 6}" for i in range(n)]
    train.to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"clip_id": ids[n:]}).to_csv(tmp_path / "test.csv", index=False)
    config = {
        "seed": 3,
        "data": {
            "train_csv": str(tmp_path / "train.csv"),
            "test_csv": str(tmp_path / "test.csv"),
            "sample_submission": None,
            "train_audio_dir": str(audio),
            "test_audio_dir": None,
            "id_column": None,
            "label_columns": None,
            "group_column": "speaker" if groups else None,
            "fold_column": None,
            "path_column": None,
            "audio_extensions": ["wav", "flac", "ogg"],
        },
        "task": {"kind": "auto"},
        "cv": {"n_folds": 3, "n_bins": 4},
        "audio": {"shard_clips": 4},
    }
    return config


def noise_clips(tmp_path, n=6):
    """``n`` noise clips of growing length as embed_clips rows: (id, path, "decode")."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        path = tmp_path / "audio" / f"c{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, rng.normal(0, 0.1, 16000 + 800 * i).astype(np.float32), 16000)
        rows.append((f"c{i}", str(path), "decode"))
    return rows
