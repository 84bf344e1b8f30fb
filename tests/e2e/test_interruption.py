"""SIGKILL mid-run, rerun: it resumes and ends byte-identical; same seed, same bytes; bad clips under `skip`.

One uninterrupted reference run (module fixture) is the yardstick for every other run here.
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from audiofold.io import atomic_path, load_npz, read_json

from conftest import BIN, ROOT, small_config, snakemake

pytestmark = pytest.mark.e2e

CONFIG = small_config("regression")
CONFIG["backbones"] = {"logmel": CONFIG["backbones"]["logmel"]}  # one backbone: fewer jobs, same code paths
CONFIG["heads"]["knn5"] = {**CONFIG["heads"]["knn"], "k": 5}  # more training jobs: a wider kill window


def _workdir(path: Path, config: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _final_outputs(wd: Path) -> dict:
    """What must not change between runs: folds and submission as bytes, OOF tables as arrays."""
    out = {
        "folds.csv": (wd / "results/folds.csv").read_bytes(),
        "submission.csv": (wd / "results/submission.csv").read_bytes(),
    }
    for npz in sorted((wd / "results").glob("oof/*/*/oof.npz")) + [wd / "results/blend/oof.npz"]:
        for key, value in load_npz(npz).items():
            out[f"{npz.relative_to(wd)}:{key}"] = value
    return out


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], bytes):
            assert a[key] == b[key], f"{key} differs"
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.fixture(scope="module")
def reference(finished_runs):
    # made once per session, whichever worker gets here first: the tests here can run side by side
    return _final_outputs(finished_runs.path(CONFIG))


def _kill_when(wd: Path, outputs: str, logs: str, total: int, timeout: float = 600) -> list[Path]:
    """Start the workflow and SIGKILL its process group in the middle of a rule's jobs: some but not
    all ``outputs`` exist, and a job of that rule that started after the first output appeared
    (so Snakemake had time to book that one as finished) is still running. Returns the outputs there."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [
        str(BIN / "snakemake"),
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(wd),
        "--configfile",
        str(wd / "config.yaml"),
        "--cores",
        "2",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.monotonic() + timeout
    logs_before_first_output: set[Path] | None = None
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the run finished before it could be interrupted"
            done = sorted(wd.glob(outputs))
            started = set(wd.glob(logs))
            if done and logs_before_first_output is None:
                logs_before_first_output = started
            if done and len(done) < total:
                later = [
                    log
                    for log in started - logs_before_first_output
                    if not (wd / "results" / _output_of(log, wd)).exists()
                ]
                if later:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return done
            time.sleep(0.02)
        raise AssertionError(f"no kill window within {timeout}s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _output_of(log: Path, wd: Path) -> Path:
    """results/logs/embed/logmel/fold1.log -> embeddings/logmel/fold1.npz; logs/train/b/h/fold1.log -> preds/b/h/fold1.npz"""
    parts = log.relative_to(wd / "results/logs").with_suffix(".npz").parts
    return Path({"embed": "embeddings", "train": "preds"}[parts[0]], *parts[1:])


def _resume(wd: Path, killed_at: list[Path]) -> list[Path]:
    """Rerun after the kill; return the outputs that counted as finished (and were not recomputed).

    An output can exist while its job is still running (a rule writes several files); Snakemake
    marks such jobs incomplete and ``--rerun-incomplete`` redoes them, so "finished" is what
    Snakemake's own dry run does not plan to redo.
    """
    for path in killed_at:  # atomic writes: a file under its final name is always whole
        assert load_npz(path)
    snakemake(wd, "--unlock")  # a killed run leaves its lock behind
    plan = snakemake(wd, "-n", "--rerun-incomplete").stdout
    planned = {
        path
        for line in plan.splitlines()
        if line.strip().startswith("output:")
        for path in re.findall(r"results/\S+?\.npz", line)
    }
    finished = [p for p in killed_at if str(p.relative_to(wd)) not in planned]
    assert finished, "nothing finished before the kill"
    stamps = {p: p.stat().st_mtime_ns for p in finished}
    snakemake(wd, "--cores", "2", "--rerun-incomplete")
    assert {p: p.stat().st_mtime_ns for p in finished} == stamps, "finished shards were recomputed"
    assert not list((wd / "results").rglob(".tmp-*")), "temp files of the killed jobs were left behind"
    return finished


N_SHARDS = CONFIG["cv"]["n_folds"] + 1


def test_kill_during_embedding_resumes_to_identical_outputs(tmp_path, reference):
    wd = _workdir(tmp_path, CONFIG)
    finished = _kill_when(
        wd, "results/embeddings/*/*.npz", "results/logs/embed/*/*.log", total=N_SHARDS * len(CONFIG["backbones"])
    )
    assert not (wd / "results/preds").exists()
    _resume(wd, finished)
    _assert_same(_final_outputs(wd), reference)


def test_kill_during_training_resumes_to_identical_outputs(tmp_path, reference):
    wd = _workdir(tmp_path, CONFIG)
    n_preds = CONFIG["cv"]["n_folds"] * len(CONFIG["backbones"]) * len(CONFIG["heads"])
    finished = _kill_when(wd, "results/preds/*/*/*.npz", "results/logs/train/*/*/*.log", total=n_preds)
    embeddings = sorted(wd.glob("results/embeddings/*/*.npz"))
    assert len(embeddings) == N_SHARDS * len(CONFIG["backbones"])  # training needs every shard of its backbone
    _resume(wd, finished + embeddings)
    _assert_same(_final_outputs(wd), reference)


def test_other_seed_changes_folds_and_skip_policy_keeps_every_test_id(tmp_path, reference):
    config = {**CONFIG, "seed": 43, "audio": {**CONFIG["audio"], "bad_audio": "skip"}}
    wd = _workdir(tmp_path, config)
    snakemake(wd, "--cores", "2", "demo_data")
    train = pd.read_csv(wd / "results/demo/train.csv", dtype=str)
    test = pd.read_csv(wd / "results/demo/test.csv", dtype=str)
    bad_train = next((wd / "results/demo/train").glob(f"{train.iloc[3, 0]}.*"))
    bad_train.write_bytes(b"not audio at all")
    next((wd / "results/demo/test").glob(f"{test.iloc[0, 0]}.*")).unlink()
    snakemake(wd, "--cores", "2")

    outputs = _final_outputs(wd)
    assert outputs["folds.csv"] != reference["folds.csv"], "a different seed must change the folds"
    report = read_json(wd / "results/validation/report.json")
    assert report["skipped"] == [train.iloc[3, 0]] and report["zero_filled"] == [test.iloc[0, 0]]
    oof_ids = load_npz(wd / "results/blend/oof.npz")["ids"].tolist()
    assert len(oof_ids) == len(train) - 1 and train.iloc[3, 0] not in oof_ids
    submission = pd.read_csv(wd / "results/submission.csv", dtype=str)
    assert submission.iloc[:, 0].tolist() == test.iloc[:, 0].tolist(), "every test id keeps its row"


def test_atomic_path_clears_what_a_killed_writer_left(tmp_path):
    target = tmp_path / "fold0.npz"
    stale = tmp_path / ".tmp-fold0.npz-abc123"
    other = tmp_path / ".tmp-fold01.npz-abc123"
    stale.write_bytes(b"half")
    other.write_bytes(b"someone else's")
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"done")
    assert target.read_bytes() == b"done" and not stale.exists() and other.exists()
