"""Training on crops with mixup through the whole workflow: every fold and the refit fit one row per
crop, and the nested fold-averages train on crops too."""

import pytest

from audiofold.io import load_npz, read_json

from conftest import small_config, snakemake


@pytest.mark.e2e
def test_workflow_trains_on_crops_with_mixup_end_to_end(workdir):
    config = small_config("multilabel")
    config["cv"]["test_predictions"] = "auto"  # the nested fold-averages train on crops too
    config["backbones"] = {
        "logmel": {
            "type": "logmel",
            "sample_rate": 16000,
            "n_mels": 32,
            "crop_seconds": 1.0,
            "tta": {"n_crops": 3, "keep_crops": True},
        }
    }
    config["heads"] = {
        "knn": {"type": "knn", "train_on_crops": True},
        "mlp": {"type": "mlp", "hidden": 16, "epochs": 3, "device": "cpu", "mixup_alpha": 0.4, "train_on_crops": True},
    }
    wd = workdir(config)
    snakemake(wd, "--cores", "2")
    assert (wd / "results/submission.csv").exists()
    for head in ("knn", "mlp"):
        for fold in range(config["cv"]["n_folds"]):
            meta = read_json(wd / f"results/preds/logmel/{head}/fold{fold}.meta.json")
            assert meta["n_fit_rows"] == 3 * meta["n_train"] and meta["head"]["train_on_crops"] is True
            assert "nested__main" in load_npz(wd / f"results/preds/logmel/{head}/fold{fold}.npz")
        refit = read_json(wd / f"results/preds/logmel/{head}/refit.meta.json")
        assert refit["n_fit_rows"] == 3 * refit["n_train"] == 3 * config["demo"]["n_train"]
    assert read_json(wd / "results/preds/logmel/mlp/fold0.meta.json")["head"]["params"]["mixup_alpha"] == 0.4
