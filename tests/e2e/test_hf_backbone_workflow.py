"""The demo through Snakemake on an hf backbone: a tiny random-weight WavLM written with save_pretrained
(as test_hf_backbone.py makes it), embedded per layer and trained on. Nothing here touches the network."""

import json

import numpy as np
import pytest

from audiofold.backbones.hf import tiny_model
from audiofold.io import file_sha256, load_npz

from conftest import small_config, snakemake


@pytest.fixture
def models(tmp_path_factory):
    return {"wavlm": tiny_model(tmp_path_factory.mktemp("hf") / "wavlm", "wavlm")}


@pytest.mark.e2e
def test_workflow_runs_with_an_hf_backbone(workdir, models):
    config = small_config("regression")
    config["backbones"] = {
        "wavlm": {"type": "hf", "model": str(models["wavlm"]), "layer": "all", "crop_seconds": 1.0, "batch_size": 16}
    }
    config["heads"] = {"linear": {"type": "linear"}}
    wd = workdir(config)
    snakemake(wd, "--cores", "2")
    emb = load_npz(wd / "results/embeddings/wavlm/train0.npz")
    assert emb["X"].shape[1] == 32 and emb["X_layers"].shape[1:] == (2, 32) and np.isfinite(emb["X"]).all()
    meta = json.loads((wd / "results/embeddings/wavlm/train0.meta.json").read_text())
    assert meta["backbone"]["checkpoint"]["sha256"] == file_sha256(models["wavlm"] / "model.safetensors")
    assert meta["backbone"]["hf"]["model_type"] == "wavlm"
    metrics = json.loads((wd / "results/metrics.json").read_text())
    assert "wavlm/linear/main" in metrics["candidates"]
    assert (wd / "results/submission.csv").exists()
