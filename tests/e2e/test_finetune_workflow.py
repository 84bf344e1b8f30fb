"""The workflow with one fine-tuned candidate (config `finetune:`): its jobs, its files, its reruns."""

import json

import numpy as np
import pytest
import yaml

from audiofold.config import load_config
from audiofold.errors import ConfigError
from audiofold.io import load_npz, meta_path, read_json

from conftest import ROOT, jobs_to_run, small_config, snakemake

# One worker runs the whole module, so its module-scoped run is made once.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("finetune_workflow")]

ENSEMBLE = {"blend", "blend_nested", "submit", "report", "all"}
FT_DOWNSTREAM = {"finetune", "finetune_refit", "finetune_curves", "collect_oof", "calibrate"} | ENSEMBLE


def finetune_config() -> dict:
    """The test demo (classification) with one frozen candidate and one small fine-tuned CNN."""
    config = small_config("classification")
    config["demo"].update(n_train=60, n_test=12)
    config["backbones"] = {"logmel": config["backbones"]["logmel"]}
    config["heads"] = {"linear": config["heads"]["linear"]}
    config["finetune"] = {
        "cnn": {
            "encoder": {"type": "cnn", "n_mels": 32, "channels": [8, 16]},
            "epochs": 2,
            "crop_seconds": 1.0,
            "tta_crops": 2,
            "batch_size": 16,
            "lr_head": 3e-3,
            "lr_encoder": 1e-3,
        }
    }
    return config


@pytest.fixture(scope="module")
def done(tmp_path_factory, finished_runs):
    return finished_runs.copy(finetune_config(), tmp_path_factory.mktemp("finetune"))


def _planned(wd, change: dict) -> set[str]:
    (wd / "change.yaml").write_text(yaml.safe_dump(change))
    return set(jobs_to_run(wd, "--configfile", str(wd / "config.yaml"), str(wd / "change.yaml")))


def test_the_fine_tuned_candidate_goes_through_collect_calibrate_and_blend(done):
    results = done / "results"
    for fold in range(3):
        preds = load_npz(results / f"preds/ft-cnn/finetune/fold{fold}.npz")
        assert preds["val__main"].shape[1] == 5 and np.isfinite(preds["test__main"]).all()
        history = (results / f"finetune/cnn/fold{fold}.csv").read_text().splitlines()
        assert history[0].startswith("epoch,train_loss,") and len(history) == 3
    assert (results / "preds/ft-cnn/finetune/refit.npz").is_file()  # cv.test_predictions: refit (default)
    metrics = json.loads((results / "metrics.json").read_text())
    assert "ft-cnn/finetune/main" in metrics["candidates"]
    assert "ft-cnn/finetune/main" in read_json(results / "blend/weights.json")["single_scores"]
    # one audio store per chunk at the encoder's rate, and no checkpoint left by finished jobs
    chunks = {p.stem for p in (results / "embeddings/logmel").glob("*.npz")}
    assert {p.stem for p in (results / "audio/16000").glob("*.f32")} == chunks
    assert not list((results).glob("checkpoints/**/*.pt"))
    assert (results / "plots/finetune_curves.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, set()),
        ({"finetune": {"cnn": {"lr_head": 1e-3}}}, FT_DOWNSTREAM),
        (
            {"heads": {"linear": {"type": "linear", "alpha": 1.0}}},
            {"train", "refit", "collect_oof", "calibrate"} | ENSEMBLE,
        ),
        ({"calibrate": {"enabled": False}}, {"calibrate"} | ENSEMBLE),
        ({"pseudo_labels": {"min_confidence": 0.9}}, set()),  # disabled: its settings are no job's params
        ({"pseudo_labels": {"enabled": True}}, {"train", "refit"} | FT_DOWNSTREAM),
        ({"resources": {"gpu_finetune": ["cnn"]}}, set()),
    ],
    ids=[
        "nothing",
        "finetune.cnn.lr_head",
        "heads.linear",
        "calibrate.enabled",
        "pseudo_labels.min_confidence (disabled)",
        "pseudo_labels.enabled",
        "resources.gpu_finetune",
    ],
)
def test_only_the_finetune_keys_rerun_finetune(done, change, expected):
    assert _planned(done, change) == expected


@pytest.mark.parametrize("change", [{"cv": {"n_folds": 4}}, {"seed": 1}], ids=["cv.n_folds", "seed"])
def test_a_fold_or_seed_change_decodes_nothing_again(done, change):
    planned = _planned(done, change)
    assert "finetune" in planned and "audio_store" not in planned and "embed" not in planned


@pytest.mark.parametrize(
    "change",
    # a scheduling hint reruns nothing (test above): a changed key puts the jobs in the plan
    [
        {"finetune": {"cnn": {"device": "cuda"}}},
        {"finetune": {"cnn": {"lr_head": 1e-3}}, "resources": {"gpu_finetune": ["cnn"]}},
    ],
    ids=["device.cuda", "resources.gpu_finetune"],
)
def test_a_cuda_or_listed_model_asks_the_executor_for_a_gpu(done, change):
    (done / "change.yaml").write_text(yaml.safe_dump(change))
    plan = snakemake(done, "-n", "--configfile", str(done / "config.yaml"), str(done / "change.yaml")).stdout
    blocks = [b for b in plan.split("\n\n") if "rule finetune:" in b or "rule finetune_refit:" in b]
    assert len(blocks) == 4 and all("gpu=1" in b for b in blocks)  # 3 folds and the refit


def test_a_model_neither_listed_nor_on_cuda_asks_for_no_gpu(done):
    (done / "change.yaml").write_text(yaml.safe_dump({"finetune": {"cnn": {"lr_head": 1e-3}}}))
    plan = snakemake(done, "-n", "--configfile", str(done / "config.yaml"), str(done / "change.yaml")).stdout
    blocks = [b for b in plan.split("\n\n") if "rule finetune:" in b or "rule finetune_refit:" in b]
    assert len(blocks) == 4 and not any("gpu=1" in b for b in blocks)


def test_bad_finetune_options_fail_at_start_up(tmp_path):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["finetune"] = {"m": {"encoder": {"type": "cnn"}, "unfreez": 2}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"finetune/m.*unfreez|finetune\.m.*unfreez"):
        load_config(tmp_path / "config.yaml", ROOT / "workflow/schemas/config.schema.yaml")


def test_pseudo_labels_give_the_fine_tuned_fold_a_student_variant(done):
    """The rule passes the pseudo_labels block to the job (one fold only, to stay cheap; the student's
    training itself is unit-tested in tests/unit/test_finetune.py)."""
    (done / "change.yaml").write_text(yaml.safe_dump({"pseudo_labels": {"enabled": True, "min_confidence": 0.51}}))
    target = "results/preds/ft-cnn/finetune/fold0.npz"
    snakemake(done, "--cores", "2", target, "--configfile", str(done / "config.yaml"), str(done / "change.yaml"))
    preds = load_npz(done / target)
    assert preds["val__main+pl"].shape == preds["val__main"].shape and np.isfinite(preds["test__main+pl"]).all()
    summary = read_json(meta_path(done / target))["pseudo_labels"]
    assert summary["enabled"] and summary["n_test"] == 12 and summary["min_confidence"] == 0.51
