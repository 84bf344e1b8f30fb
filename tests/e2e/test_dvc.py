"""`dvc repro` around the Snakemake workflow, in a throw-away git+DVC copy of the project (small config)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import BIN, ROOT, small_config

pytestmark = pytest.mark.e2e

# What `dvc repro` needs from the project: the stage's command and its declared deps.
PROJECT_FILES = ("Snakefile", "dvc.yaml", "workflow", "envs", "scripts", "src")
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([str(BIN / "dvc"), *args], cwd=repo, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise AssertionError(
            f"dvc {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc.stdout


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env={**os.environ, **GIT_ENV})


@pytest.fixture
def dvc_repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, repo / name)
    config = small_config("classification")
    config["backbones"] = {"logmel": config["backbones"]["logmel"]}  # one backbone keeps the test quick
    (repo / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copy2(ROOT / ".gitignore", repo / ".gitignore")
    git(repo, "init", "-q")
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "project")
    return repo


def _mtimes(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def test_repro_head_change_and_remote_round_trip(dvc_repo, tmp_path):
    repo = dvc_repo
    dvc(repo, "repro")
    assert json.loads(dvc(repo, "metrics", "show", "--json"))
    plots = dvc(repo, "plots", "show", "--json")
    assert "results/plots/oof_vs_truth.csv" in plots and "results/plots/per_class.csv" in plots
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline")

    # A head-only change: DVC reruns its stage, Snakemake retrains only that head.
    embeddings, models = _mtimes(repo / "results/embeddings"), _mtimes(repo / "results/models")
    assert embeddings and models
    dvc(repo, "exp", "run", "-S", "config.yaml:heads.knn.k=5")  # a file other than params.yaml is named
    assert _mtimes(repo / "results/embeddings") == embeddings, "a head-only change must not recompute embeddings"
    changed = {p for p, t in _mtimes(repo / "results/models").items() if t != models[p]}
    assert changed and all("/knn/" in str(p) for p in changed), changed
    params = json.loads(dvc(repo, "params", "diff", "--json"))
    assert {k: params["config.yaml"]["heads.knn.k"][k] for k in ("old", "new")} == {"old": 11, "new": 5}
    assert "results/metrics.json" in json.loads(dvc(repo, "metrics", "diff", "--json"))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "knn k=5")

    # Remote round trip: push, lose results/ and the cache, pull: same bytes, nothing to rerun.
    submission = (repo / "results/submission.csv").read_bytes()
    dvc(repo, "remote", "add", "-d", "local", str(tmp_path / "remote"))
    dvc(repo, "push")
    shutil.rmtree(repo / "results")
    shutil.rmtree(repo / ".dvc/cache")
    dvc(repo, "pull")
    assert (repo / "results/submission.csv").read_bytes() == submission
    assert _mtimes(repo / "results/embeddings").keys() == embeddings.keys()
    out = dvc(repo, "repro")
    assert "didn't change, skipping" in out and "Running stage" not in out, out
