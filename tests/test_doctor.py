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
from audiofold.doctor import (
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
    assert cli(["doctor", "config.yaml"]) in (0, 1)
    out = capsys.readouterr().out
    assert "[ok  ] python" in out and "backbone mfcc" in out


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
    for piece in ("torch", "torchaudio", "transformers", "aisfx", "distillmos"):
        assert f"[ok  ] {piece}: " in proc.stdout, piece
    assert "libtorchaudio loaded" in proc.stdout and proc.stdout.rstrip().endswith("imports ok")


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
