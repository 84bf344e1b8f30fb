"""`audiofold doctor`: environment facts, backbone weights through the weights_status protocol, disk."""

import copy
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import yaml

from audiofold import backbones
from audiofold.backbones.base import Backbone, BackboneOptionError
from audiofold.cli import main as cli
from audiofold.cli.doctor import (
    backbone_weights,
    check_imports,
    check_packaged_backbone,
    check_packages,
    estimate_cache_bytes,
    run_checks,
)
from audiofold.io import file_sha256

from conftest import ROOT

# Stand-ins that shadow the installed packages through PYTHONPATH and fail as a mismatched install does:
# (package source, what the FAIL line must quote).
BROKEN = {
    "torchaudio": (
        'raise OSError("/venv/torchaudio/lib/libtorchaudio.abi3.so: undefined symbol: _ZN3c10Error")\n',
        "OSError: /venv/torchaudio/lib/libtorchaudio.abi3.so: undefined symbol: _ZN3c10Error",
    ),
    "transformers": (
        'raise ImportError("cannot import name GenerationMixin")\n',
        "ImportError: cannot import name GenerationMixin",
    ),
}


def _doctor_imports_only(pythonpath: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    return subprocess.run(
        [sys.executable, "-m", "audiofold.cli", "doctor", "--imports-only"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_project_config_is_ready(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    checks = {c.name: c for c in run_checks("config.yaml")}
    assert checks["python"].ok and checks["torch"].ok and checks["config"].ok
    assert checks["torch"].detail.startswith("2.11")
    assert "GPU" in checks["gpu"].detail or "CUDA" in checks["gpu"].detail
    assert checks["backbone logmel"].ok and "no weights needed" in checks["backbone logmel"].detail
    assert "cache ~" in checks["disk"].detail
    # the demo's clips, each backbone and head measured here
    line = checks["run time"].detail
    assert line.startswith("estimated run time on this machine: ~") and "240 + 60 clips of ~2.5 s" in line
    assert all(f"{part} " in line for part in ("logmel", "mfcc", "head linear", "head knn", "job start-ups"))
    assert cli(["doctor", "config.yaml"]) in (0, 1)
    out = capsys.readouterr().out
    assert "[ok  ] python" in out and "backbone mfcc" in out and "[info] run time: estimated run time" in out


def test_missing_package_and_missing_config_are_reported(tmp_path):
    (bad,) = check_packages(("surely-not-installed-audiofold-pkg",))
    assert bad.ok is False and "make install" in bad.detail
    checks = run_checks(tmp_path / "nope.yaml")
    assert checks[-1].name == "config" and checks[-1].ok is None


def test_invalid_config_fails(tmp_path):
    config = _config()
    config["cv"]["n_folds"] = 1
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli(["doctor", str(path)]) == 1


def test_missing_pretrained_weights_name_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (check,) = backbone_weights("ssl", {"type": "torchaudio", "bundle": "wavlm_base", "tta": {}, "batch_size": 4})
    assert check.ok is False
    assert "audiofold weights fetch wavlm_base" in check.detail


class _WeightsBackbone(Backbone):
    """A backbone with a weights file, following the protocol of docs/DESIGN.md: the build fails
    when the file is missing, a built one reports ``weights_status()``."""

    type_name = "with_weights"

    def __init__(self, *, sample_rate: int = 16000, checkpoint: str = "x.pt", crop_seconds=None):
        super().__init__(sample_rate=sample_rate, crop_seconds=crop_seconds, checkpoint=checkpoint)
        if not Path(checkpoint).is_file():
            raise BackboneOptionError(
                self.type_name, "checkpoint", f"{checkpoint} missing; run `audiofold weights fetch toy`"
            )
        self.checkpoint_path = Path(checkpoint)

    @property
    def dim(self) -> int:
        return 1

    def embed_batch(self, crops):
        return np.zeros((len(crops), 1), np.float32)

    def weights_status(self):
        return {"path": str(self.checkpoint_path), "sha256": file_sha256(self.checkpoint_path), "present": True}


def test_weights_status_protocol(tmp_path, monkeypatch):
    monkeypatch.setitem(backbones.BACKBONES, "with_weights", _WeightsBackbone)
    ckpt = tmp_path / "toy.pt"
    (missing,) = backbone_weights("b", {"type": "with_weights", "checkpoint": str(ckpt)})
    assert missing.ok is False and "backbones.b.checkpoint" in missing.detail and "weights fetch toy" in missing.detail
    ckpt.write_bytes(b"w")
    (present,) = backbone_weights("b", {"type": "with_weights", "checkpoint": str(ckpt)})
    assert present.ok is True and str(ckpt) in present.detail and file_sha256(ckpt)[:12] in present.detail


def test_cache_estimate_scales_with_data_and_sample_rates():
    config = _config()
    one_rate = estimate_cache_bytes(config, 10**9)  # logmel and mfcc share 16 kHz: decoded once
    assert one_rate == 6 * 10**9
    two = copy.deepcopy(config)
    two["backbones"]["mfcc"]["sample_rate"] = 32000
    assert estimate_cache_bytes(two, 10**9) == 3 * one_rate
    assert estimate_cache_bytes(config, 0) == 0


def test_imports_only_passes_in_the_installed_environment():
    proc = _doctor_imports_only(os.environ.get("PYTHONPATH", ""))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for piece in ("torch", "torchaudio", "transformers", "aisfx", "distillmos", "resemblyzer"):
        assert f"[ok  ] {piece}: " in proc.stdout, piece
    assert "libtorchaudio loaded" in proc.stdout and proc.stdout.rstrip().endswith("imports ok")
    assert "run time" not in proc.stdout  # no config, no estimate: this path stays fast


@pytest.mark.parametrize("piece", sorted(BROKEN))
def test_imports_only_fails_on_a_package_that_does_not_import(tmp_path, piece):
    """Metadata says the package is installed; only importing it shows it is broken."""
    source, error = BROKEN[piece]
    (tmp_path / piece).mkdir()
    (tmp_path / piece / "__init__.py").write_text(source)
    proc = _doctor_imports_only(os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = next(row for row in proc.stdout.splitlines() if row.startswith(f"[FAIL] {piece}: "))
    assert f"import failed: {error};" in line  # the piece, its error line ...
    assert "make install" in line and "requirements.lock.txt" in line  # ... and the fix
    # what imports the broken piece fails too (distillmos imports torchaudio); the summary names it first
    assert proc.stdout.splitlines()[-1].split(": ")[1].split(", ")[0] == piece


def test_torchaudio_without_its_compiled_extension_fails(monkeypatch):
    import torchaudio  # noqa: F401

    monkeypatch.setitem(sys.modules, "torchaudio._extension", types.SimpleNamespace(_IS_TORCHAUDIO_EXT_AVAILABLE=False))
    checks = {c.name: c for c in check_imports()}
    assert checks["torch"].ok is True and checks["torchaudio"].ok is False
    assert "compiled extension" in checks["torchaudio"].detail and "make install" in checks["torchaudio"].detail


def test_packaged_backbone_package_missing_or_broken():
    missing = ("surely_not_installed_audiofold_pkg.sub",)
    assert check_packaged_backbone("aisfx", missing, needed=False).ok is None  # unused type: a fact
    needed = check_packaged_backbone("aisfx", missing, needed=True)
    assert needed.ok is False and "the aisfx backbone needs it" in needed.detail
    assert "requirements/packaged-weights.txt" in needed.detail
    broken = check_packaged_backbone("aisfx", ("aisfx.no_such_module",), needed=False)  # installed, does not import
    assert (
        broken.ok is False
        and "import failed: ModuleNotFoundError" in broken.detail
        and "aisfx.no_such_module" in broken.detail
    )


def test_broken_import_skips_the_backbone_builds(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` raises ImportError
    checks = {c.name: c for c in run_checks("config.yaml")}
    assert checks["transformers"].ok is False
    assert checks["backbone logmel"].ok is None and "transformers must import first" in checks["backbone logmel"].detail


def _data_folder(root: Path, n_train: int, n_test: int, seconds: float = 1.0) -> Path:
    """train.csv / test.csv and 16 kHz wavs of ``seconds`` (ratings, so any head can fit them)."""
    import pandas as pd
    import soundfile as sf

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        ids = [f"{split}{i:04d}" for i in range(n)]
        table = pd.DataFrame(
            {"id": ids, **({"rating": rng.integers(1, 6, n).astype(float)} if split == "train" else {})}
        )
        table.to_csv(root / f"{split}.csv", index=False)
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in ids:
            sf.write(root / split / f"{i}.wav", rng.normal(0, 0.1, int(16000 * seconds)).astype(np.float32), 16000)
    return root


def _init_config(data: Path, **kwargs) -> dict:
    from audiofold.cli.scaffold import scaffold
    from audiofold.config import load_schema, validate_config

    config = scaffold(data, base_dir=data, **kwargs).config
    for key in ("train_csv", "test_csv", "train_audio_dir", "test_audio_dir"):
        config["data"][key] = str(data / config["data"][key])
    return validate_config(config, load_schema(), source="test")


def test_run_time_estimate_scales_with_the_clips_and_names_every_backbone(tmp_path, monkeypatch):
    """Per-clip and per-fit costs stubbed to fixed numbers: the arithmetic on top of them, exactly."""
    from audiofold.cli import estimate

    cost = {"aisfx": 0.5, "distillmos": 0.2, "resemblyzer": 0.1, "whisper": 0.05, "logmel": 0.01, "mfcc": 0.01}
    monkeypatch.setattr(
        estimate,
        "measure_backbone",
        lambda name, params, seconds, paths=(), max_seconds=None: {
            "build": 1.0,
            "per_clip": cost[name] * seconds,
            "decode": 0.0,
            "dim": 8,
            "torch": name in ("aisfx", "distillmos", "resemblyzer", "whisper"),
        },
    )
    monkeypatch.setattr(estimate, "measure_head", lambda params, task, dim, rows, seed=0: 0.01 * rows)
    small = _init_config(_data_folder(tmp_path / "small", 60, 20))
    big = _init_config(_data_folder(tmp_path / "big", 120, 40))
    assert set(small["backbones"]) == {"aisfx", "distillmos", "resemblyzer", "whisper", "logmel", "mfcc"}  # init's

    one = estimate.estimate_run_time(small, cores=2, startup=(2.0, 3.0))
    two = estimate.estimate_run_time(big, cores=2, startup=(2.0, 3.0))
    assert (one.workload.n_train, one.workload.n_test, round(one.workload.clip_seconds, 2)) == (60, 20, 1.0)
    # 80 clips in 3 embed chunks (32 a chunk), each job starting Python and torch and loading the model
    # (one embed job at a time on 2 cores: each takes 2 threads)
    bookkeeping = estimate.SCHEDULER_SECONDS
    assert one.parts["aisfx"] == pytest.approx(80 * 0.5 + 3 * (2.0 + bookkeeping + 3.0 + 1.0))
    assert one.parts["logmel"] == pytest.approx(80 * 0.01 + 3 * (2.0 + bookkeeping + 1.0))  # no torch here
    for name in ("aisfx", "distillmos", "head lgbm"):
        assert two.parts[name] / one.parts[name] == pytest.approx(2.0, rel=0.05), name
    # 6 backbones x (5 folds + the refit), each on the fold's 4/5 of the rows, over 2 cores
    assert one.parts["head lgbm"] == pytest.approx(6 * 6 * 0.01 * 48 / 2)
    line = one.line()
    assert line.startswith("estimated run time on this machine: ~")
    parts = ("aisfx", "distillmos", "resemblyzer", "whisper", "logmel", "mfcc", "head linear", "head lgbm", "head knn")
    for part in (*parts, "job start-ups"):
        assert f"{part} " in line, part
    assert "60 + 20 clips of ~1.0 s (the data tables) with --cores 2" in line


def test_run_time_estimate_measures_this_machine(tmp_path):
    """Unstubbed, hand-crafted backbones (fast): the clip length read from the files, every cost measured."""
    from audiofold.cli.estimate import estimate_run_time, measure_backbone

    config = _init_config(_data_folder(tmp_path, 20, 4, seconds=2.0), fast=True)
    est = estimate_run_time(config, cores=1, startup=(0.5, 1.0))
    assert (est.workload.n_train, est.workload.n_test) == (20, 4) and est.workload.clip_seconds == pytest.approx(2.0)
    assert set(est.parts) == {"logmel", "mfcc", "head linear", "head knn", "job start-ups"}
    assert all(seconds > 0 for seconds in est.parts.values())
    measured = measure_backbone("logmel", config["backbones"]["logmel"], 2.0, est.workload.paths, 60)
    assert measured["per_clip"] > 0 and measured["decode"] > 0 and measured["dim"] > 0 and not measured["torch"]


TINY_CNN = {"encoder": {"type": "cnn", "n_mels": 32, "channels": [8, 16]}, "crop_seconds": 1.0, "batch_size": 4}


def _with_finetune(config: dict, **options) -> dict:
    from audiofold.config import load_schema, validate_config

    config = copy.deepcopy(config)
    config["finetune"] = {"cnn": {**copy.deepcopy(TINY_CNN), **options}}
    return validate_config(config, load_schema(), source="test")


def test_run_time_estimate_times_a_fine_tuning_step(tmp_path):
    """Unstubbed: the fine-tuned model is built as its job builds it and a training step is timed."""
    from audiofold.cli.estimate import SCHEDULER_SECONDS, estimate_run_time

    config = _with_finetune(_init_config(_data_folder(tmp_path, 20, 4, seconds=2.0), fast=True), epochs=3)
    est = estimate_run_time(config, cores=2, startup=(0.5, 1.0))
    # 5 folds and the refit, one at a time on 2 cores: more than their start-ups, by the timed training
    assert est.parts["finetune cnn"] > 6 * (0.5 + SCHEDULER_SECONDS + 1.0) and est.parts["audio stores"] > 0
    line = est.line()
    assert "finetune cnn " in line and "all 3 epochs counted (the upper bound: early stopping may stop sooner)" in line


def test_run_time_estimate_of_fine_tuning_scales_with_epochs_rows_and_refit(tmp_path, monkeypatch):
    """One training step costs 1 s, inference and the build nothing: the fine-tune part counts the steps."""
    from audiofold.cli import estimate
    from audiofold.finetune import FinetuneOptions

    monkeypatch.setattr(
        estimate,
        "measure_finetune",
        lambda name, params, task, seed=0: {
            "build": 0.0,
            "step": 1.0,
            "crop": 0.0,
            "device": "cpu",
            "options": {**FinetuneOptions.from_config(params).to_dict(), "sample_rate": 16000},
        },
    )
    monkeypatch.setattr(
        estimate,
        "measure_backbone",
        lambda name, params, seconds, paths=(), max_seconds=None: {
            "build": 0.0,
            "per_clip": 0.0,
            "decode": 0.0,
            "dim": 8,
            "torch": False,
        },
    )
    monkeypatch.setattr(estimate, "measure_head", lambda params, task, dim, rows, seed=0: 0.0)
    base = _init_config(_data_folder(tmp_path, 20, 4), fast=True)  # 5 folds, refit

    def part(**options) -> float:
        config = _with_finetune(base, **options)
        return estimate.estimate_run_time(config, cores=2, startup=(2.0, 3.0)).parts["finetune cnn"]

    # each fold fits 16 x 0.85 = 13.6 rows (4 steps of 4), the refit 20 rows (5 steps): 25 steps an epoch,
    # and 6 jobs each starting Python and torch; one job at a time on 2 cores (2 threads a job)
    job = 2.0 + estimate.SCHEDULER_SECONDS + 3.0
    assert part(epochs=2) == pytest.approx(2 * 25 + 6 * job)
    assert part(epochs=6) == pytest.approx(6 * 25 + 6 * job)
    assert part(epochs=2, validation="fold") == pytest.approx(2 * (5 * 4 + 5) + 6 * job)  # 16 rows: 4 steps
    base["cv"]["test_predictions"] = "folds"
    assert part(epochs=2) == pytest.approx(2 * 20 + 5 * job)
