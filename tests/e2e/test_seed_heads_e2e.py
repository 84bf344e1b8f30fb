"""The seeds' heads train through the whole workflow on the demo data (small: 2 epochs, 3 folds).

va runs in the regression case (multitarget va is unit-tested in test_seed_heads.py) to keep CI short;
its last-batch-of-one-row case is test_torch_head_sizes.py's.
"""

import json

import numpy as np
import pytest

from audiofold.io import load_npz

from conftest import small_config, snakemake

TORCH_FAST = {"epochs": 2, "batch_size": 16, "device": "cpu"}
CASES = {
    # the prompt head reads log-mel frame sequences, which the logmel backbone writes with keep_sequence
    "regression": {
        "prompt": {"type": "prompt", "d_model": 24, "hidden": 32, **TORCH_FAST},
        "va": {"type": "va", "hidden": 32, **TORCH_FAST},
        "lgbm": {"type": "lgbm", "n_trials": 2, "params": {"n_estimators": 30}},
    },
    "classification": {
        "prompt": {"type": "prompt", "d_model": 24, "hidden": 32, **TORCH_FAST},
        "lgbm": {"type": "lgbm", "params": {"n_estimators": 30}},
    },
    "multilabel": {
        "mlp": {"type": "mlp", "inputs": "sequence", "hidden": 32, **TORCH_FAST},
        "lgbm": {"type": "lgbm", "params": {"n_estimators": 30}},
    },
}
VARIANTS = {
    "prompt": {"regression": {"ev", "reg", "mix", "knn"}, "classification": {"main", "knn"}},
    "va": None,
    "lgbm": None,
    "mlp": None,
}


@pytest.mark.e2e
@pytest.mark.parametrize("kind", sorted(CASES))
def test_seed_heads_train_through_the_workflow(kind, workdir):
    config = small_config(kind)
    config["backbones"] = {"logmel": {**config["backbones"]["logmel"], "keep_sequence": True}}
    config["heads"] = {"linear": {"type": "linear"}, **CASES[kind]}
    config["cv"]["test_predictions"] = "folds"  # no refit jobs: refit is the same training code on all rows
    wd = workdir(config)
    snakemake(wd, "--cores", "2")
    metrics = json.loads((wd / "results" / "metrics.json").read_text())
    assert (wd / "results" / "submission.csv").exists()
    targets = load_npz(wd / "results" / "targets.npz")
    for head in CASES[kind]:
        oof = load_npz(wd / "results" / "oof" / "logmel" / head / "oof.npz")
        variants = {k.split("__", 1)[1] for k in oof if k.startswith("P__")}
        assert variants == ((VARIANTS[head] or {}).get(kind) or {"main"})
        for v in variants:
            assert np.isfinite(oof[f"P__{v}"]).all() and len(oof[f"P__{v}"]) == len(targets["ids"])
        meta = json.loads((wd / "results" / "preds" / "logmel" / head / "fold0.meta.json").read_text())
        assert meta["inputs"] == ("sequence" if head in ("prompt", "mlp") else "pooled")
    assert any(key.startswith("logmel/") for key in json.dumps(metrics).split('"'))
