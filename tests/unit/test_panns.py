"""PANNs CNN14: random weights saved in the official checkpoint format, loaded like the real file."""

import numpy as np
import pytest
import torch

from audiofold import checkpoints
from audiofold.backbones import build_backbone, declared_sample_rate
from audiofold.backbones.panns import build_cnn14
from audiofold.errors import ConfigError


def official_checkpoint(path, seed=0):
    """The official layout: {"model": state dict with front-end tensors, "iteration": ...}."""
    torch.manual_seed(seed)
    model = build_cnn14()
    with torch.no_grad():  # non-trivial BN statistics, as a trained model has
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    state = model.state_dict()
    state["spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(513, 1, 1024)
    state["spectrogram_extractor.stft.conv_imag.weight"] = torch.zeros(513, 1, 1024)
    state["logmel_extractor.melW"] = torch.zeros(513, 64)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state, "iteration": 660000}, path)
    return path


def test_cnn14_loads_the_official_format_from_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = official_checkpoint(checkpoints.checkpoint_dir() / "Cnn14_mAP=0.431.pth")
    bb = build_backbone("panns", {"type": "panns"})
    assert bb.sample_rate == 32000 and bb.dim == 2048 and bb.checkpoint_path == path
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 32000
    crops = np.stack([0.1 * rng.standard_normal(32000), 0.3 * np.sin(2 * np.pi * 1000 * t)]).astype(np.float32)
    X = bb.embed_batch(crops)
    assert X.shape == (2, 2048) and np.isfinite(X).all() and (X >= 0).all()  # ReLU output
    assert not np.allclose(X[0], X[1])
    np.testing.assert_allclose(bb.embed_batch(crops[1:]), X[1:], rtol=1e-4, atol=1e-5)


def test_cnn14_16k_variant_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert declared_sample_rate({"type": "panns", "variant": "cnn14_16k"}) == 16000
    assert declared_sample_rate({"type": "panns"}) == 32000
    with pytest.raises(
        ConfigError,
        match=r"backbones\.p\.checkpoint: .*Cnn14_16k_mAP=0.438.pth.*"
        r"audiofold weights fetch panns_cnn14_16k",
    ):
        build_backbone("p", {"type": "panns", "variant": "cnn14_16k"})
    path = official_checkpoint(tmp_path / "mine.pth")
    bb = build_backbone("p", {"type": "panns", "variant": "cnn14_16k", "checkpoint": str(path)})
    assert bb.embed_batch(np.zeros((1, 16000), np.float32)).shape == (1, 2048)
    torch.save({"model": {"fc1.weight": torch.zeros(3, 3)}}, tmp_path / "bad.pth")
    with pytest.raises(ConfigError, match=r"backbones\.p\.checkpoint: .*is not a CNN14 checkpoint"):
        build_backbone("p", {"type": "panns", "checkpoint": str(tmp_path / "bad.pth")})
