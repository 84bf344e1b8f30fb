"""The whole Snakemake workflow on small generated data, one run per task kind."""

import json

import numpy as np
import pandas as pd
import pytest

from audiofold.io import load_npz

from conftest import demo_config, jobs_to_run, small_config, snakemake

pytestmark = pytest.mark.e2e


def metrics_of(npz, workdir):
    from audiofold import metrics
    from audiofold.tasks import load_task

    return metrics.score(npz["y"], npz["P"].astype(np.float64), load_task(workdir / "results/task.json"))


def test_head_backbones_limit_the_candidates(workdir):
    config = small_config("regression")
    config["heads"]["knn"]["backbones"] = ["mfcc"]
    wd = workdir(config)
    snakemake(wd, "--cores", "2", "validate")  # the checkpoint that lists the clips and their chunks
    jobs = jobs_to_run(wd)
    n_folds = config["cv"]["n_folds"]
    assert jobs["train"] == 3 * n_folds  # linear on logmel and mfcc, knn on mfcc only
    assert jobs["collect_oof"] == 3 and jobs["calibrate"] == 3
    plan = snakemake(wd, "-n").stdout
    assert "oof/mfcc/knn/oof.npz" in plan and "oof/logmel/knn" not in plan


@pytest.mark.parametrize("kind", ["regression", "multitarget", "classification", "multilabel"])
def test_workflow_end_to_end(kind, finished_runs, tmp_path):
    wd = finished_runs.copy(demo_config(kind), tmp_path)
    if kind == "multilabel":
        meta = json.loads((wd / "results/embeddings/logmel/train0.meta.json").read_text())
        assert meta["n_crops"] == 5

    metrics = json.loads((wd / "results/metrics.json").read_text())
    primary, greater = metrics["primary"], metrics["greater_is_better"]
    blend, baseline = metrics["blend"]["in_sample"]["overall"][primary], metrics["baseline"][primary]
    assert (blend > baseline) if greater else (blend < baseline), (kind, primary, blend, baseline)
    # the honest score: calibration, pruning, weights and rounding re-chosen per outer fold
    nested = metrics["blend"]["nested"]
    assert set(nested["per_fold"]) == {"0", "1", "2"} and len(nested["folds"]) == 3
    nested_oof = load_npz(wd / "results/blend/nested_oof.npz")
    assert np.isfinite(nested_oof["P"]).all() and nested["overall"][primary] == pytest.approx(
        metrics_of(nested_oof, wd)[primary], rel=1e-5
    )
    # duplicate clips: counted in metrics.json, the pairs in validation/duplicates.csv
    dups = metrics["duplicates"]
    pairs = pd.read_csv(wd / "results/validation/duplicates.csv", dtype=str)
    near, across = pairs["kind"] == "near", pairs["split_b"] == "train"
    assert dups["backbone"] == "logmel" and dups["threshold"] == 0.995
    assert (dups["near_pairs_across_folds"], dups["near_pairs_train_test"]) == (
        (near & across).sum(),
        (near & ~across).sum(),
    )
    assert "hash" in pd.read_csv(wd / "results/validation/clips.csv", nrows=1).columns
    assert metrics["candidates"], "every backbone x head should be scored"
    for entry in metrics["candidates"].values():
        assert set(entry["per_fold"]) == {"0", "1", "2"}

    sub = pd.read_csv(wd / "results/submission.csv", dtype=str)
    sample = pd.read_csv(wd / "results/demo/sample_submission.csv", dtype=str)
    assert list(sub.columns) == list(sample.columns)
    assert sub.iloc[:, 0].tolist() == sample.iloc[:, 0].tolist()
    values = sub.iloc[:, 1:]
    if kind == "regression":
        rating = values.iloc[:, 0].astype(float).to_numpy()
        rounding = metrics["blend"]["rounding"]
        assert rounding["mode"] == "auto" and rounding["step"] == 0.5
        on_grid = np.allclose(rating * 2, np.round(rating * 2))
        assert on_grid or not rounding["applied"]
        assert rating.min() >= 0 and rating.max() <= 5
        # metrics.json scores what is submitted: rounded only if the OOF decision said so
        assert blend == pytest.approx(rounding["rounded" if rounding["applied"] else "unrounded"], rel=1e-5)
    if kind == "multilabel":
        scores = values.astype(float).to_numpy()
        assert scores.min() >= 0 and scores.max() <= 1
        # per-class weights: decided (auto) on cross-fitted rows, re-decided per outer fold in the nested score
        per_class = metrics["blend"]["per_class"]
        assert per_class["requested"] == "auto" and isinstance(per_class["applied"], bool)
        assert all("per_class" in fold for fold in nested["folds"])
        # label-string thresholds: F1 in-sample and nested, global and per class, reported apart
        labels = metrics["blend"]["labels"]
        assert set(labels["in_sample_f1"]) == {"global", "per_class"}
        assert set(labels["nested_f1"]) == {"f1", "f1_global", "f1_per_class"}

    for plot in ("scores", "oof_vs_truth", "blend_weights", "calibration"):
        assert (wd / f"results/plots/{plot}.png").stat().st_size > 1000
    for log_name in ("prepare", "blend", "blend_nested", "submit"):
        assert (wd / f"results/logs/{log_name}.log").exists()

    # Every artifact has a sidecar saying what made it (logs, benchmarks, plots, the demo's clips, the
    # per-clip embedding cache aside: cache entries are keyed by content, shared across runs; and the
    # marker that says the folder is audiofold's).
    results = wd / "results"
    artifacts = [
        p.relative_to(results) for p in results.rglob("*") if p.is_file() and not p.name.endswith(".meta.json")
    ]
    artifacts = [
        p
        for p in artifacts
        if p.parts[0] not in ("logs", "benchmarks", "plots", "cache", ".audiofold-results")
        and p.parts[:2] not in (("demo", "train"), ("demo", "test"))
    ]
    assert {"submission.csv", "models", "oof", "calibrated", "blend"} <= {p.parts[0] for p in artifacts}
    for artifact in artifacts:
        sidecar = results / artifact.with_name(artifact.name.split(".")[0] + ".meta.json")
        assert sidecar.is_file(), f"no meta.json beside results/{artifact}"
        assert "step" in json.loads(sidecar.read_text()), sidecar
    model_meta = json.loads((results / "models/logmel/linear/fold0.meta.json").read_text())
    assert model_meta["step"] == "train" and model_meta["wildcards"]["head"] == "linear"

    # Nothing changed: nothing reruns.
    assert jobs_to_run(wd) == {}


def test_head_param_change_reruns_only_that_head(finished_runs, workdir):
    config = demo_config("regression")
    wd = finished_runs.copy(config, workdir(config))
    embeddings = sorted((wd / "results/embeddings").rglob("*.npz"))
    stamps = {p: p.stat().st_mtime_ns for p in embeddings}

    config["heads"]["knn"]["k"] = 5
    workdir(config)
    planned = jobs_to_run(wd)
    assert planned.get("train") == config["cv"]["n_folds"] * len(config["backbones"])
    assert not {"demo_data", "prepare", "validate", "decode", "embed"} & set(planned)
    proc = snakemake(wd, "--cores", "2")
    assert {p: p.stat().st_mtime_ns for p in embeddings} == stamps
    # The run ends by saying what it made (the Snakefile's onsuccess, audiofold.run_summary); Snakemake
    # itself writes to stderr, so stdout is the summary alone.
    metrics = json.loads((wd / "results/metrics.json").read_text())
    nested = metrics["blend"]["nested"]["overall"][metrics["primary"]]
    summary = proc.stdout.splitlines()
    assert summary[:2] == ["audiofold: run complete", "  submission: results/submission.csv"]
    assert any("blend, nested" in line and line.endswith(f"{nested:.4f}") for line in summary), summary
    assert summary[-1] == f"  HTML report: snakemake --configfile {wd / 'config.yaml'} --report results/report.html"


def test_dry_run_shows_one_job_per_step_and_shard(workdir):
    config = small_config("classification")
    wd = workdir(config)
    before = jobs_to_run(wd)  # a fresh run: the chunks are known once the validate checkpoint has run
    assert before["demo_data"] == before["hashes"] == before["validate"] == 1 and "embed" not in before
    snakemake(wd, "--cores", "2", "validate")
    planned = jobs_to_run(wd)
    n_folds, n_backbones, n_heads = 3, len(config["backbones"]), len(config["heads"])
    clips = pd.read_csv(wd / "results/validation/clips.csv", dtype=str)
    n_chunks = clips["chunk"].nunique()  # 110 clips, auto: 32 per chunk -> 3 train + 1 test chunks
    assert n_chunks == 4 and "decode" not in planned
    assert planned["embed"] == n_chunks * n_backbones
    assert planned["train"] == n_folds * n_backbones * n_heads
    assert planned["refit"] == n_backbones * n_heads  # cv.test_predictions: refit (default)
    assert planned["collect_oof"] == planned["calibrate"] == n_backbones * n_heads
    assert planned["blend"] == planned["submit"] == planned["prepare"] == planned["shift"] == 1
    assert planned["duplicates"] == 1  # identical and near-duplicate clips, on the first backbone
    # the embeddings alone (e.g. on a GPU partition first): every embed job and nothing after it
    assert jobs_to_run(wd, "embed_all") == {"embed": n_chunks * n_backbones, "embed_all": 1}


def test_bad_config_key_is_named(workdir):
    config = small_config("regression")
    config["cv"]["n_fold"] = 3
    wd = workdir(config)
    proc = snakemake(wd, "-n", check=False)
    assert proc.returncode != 0
    assert "cv" in proc.stderr + proc.stdout and "n_fold" in proc.stderr + proc.stdout


def test_pseudo_labels_add_a_second_round_candidate(finished_runs, tmp_path):
    """pseudo_labels.enabled: every train/refit job writes `main+pl`, which collect scores on the
    training folds and the blend and its nested score weigh as one more candidate."""
    config = demo_config("classification")
    config["pseudo_labels"] = {"enabled": True}
    wd = finished_runs.copy(config, tmp_path)
    results = wd / "results"
    for head in ("linear", "knn"):
        scores = json.loads((results / f"oof/logmel/{head}/scores.json").read_text())
        assert set(scores["variants"]) == {"main", "main+pl"}
        assert set(scores["variants"]["main+pl"]["per_fold"]) == {"0", "1", "2"}
        fold_meta = json.loads((results / f"preds/logmel/{head}/fold0.meta.json").read_text())
        assert fold_meta["variants"] == ["main", "main+pl"] and fold_meta["pseudo_labels"]["n_test"] == 20
        assert "test__main+pl" in load_npz(results / f"preds/logmel/{head}/refit.npz")
        assert np.isfinite(load_npz(results / f"calibrated/logmel/{head}/oof.npz")["P__main+pl"]).all()
    metrics = json.loads((results / "metrics.json").read_text())
    assert {f"{b}/{h}/main+pl" for b in ("logmel", "mfcc") for h in ("linear", "knn")} <= set(metrics["candidates"])
    weights = json.loads((results / "blend/weights.json").read_text())
    assert any(name.endswith("/main+pl") for name in weights["weights"])
    assert np.isfinite(load_npz(results / "blend/nested_oof.npz")["P"]).all()


def test_embed_jobs_ask_for_the_cores_their_backbone_keeps_busy(workdir):
    """librosa front ends run on one thread: their jobs take one core each (two run side by side on two);
    a torch model's job takes the rule's two."""
    config = small_config("classification")
    config["backbones"] = {"logmel": config["backbones"]["logmel"], "speech": {"type": "resemblyzer"}}
    wd = workdir(config)
    snakemake(wd, "--cores", "2", "validate")
    plan = snakemake(wd, "-n", "-F", "results/embeddings/logmel/train0.npz", "results/embeddings/speech/train0.npz")
    jobs = {
        block.split("wildcards: backbone=")[1].split(",")[0]: block
        for block in plan.stdout.split("\nrule ")
        if block.startswith("embed:") and "wildcards: backbone=" in block
    }
    assert "threads: 2" in jobs["speech"] and "threads:" not in jobs["logmel"]  # Snakemake shows threads > 1 only
