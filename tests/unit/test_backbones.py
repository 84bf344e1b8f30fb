import json

import numpy as np
import pytest

from audiofold.backbones import BACKBONES, Backbone, build_backbone, declared_sample_rate
from audiofold.errors import ConfigError


def tone(freq, seconds=1.0, sr=16000, amp=0.3):
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def test_registry_holds_the_handcrafted_types():
    assert {"logmel", "mfcc"} <= set(BACKBONES)
    assert all(issubclass(cls, Backbone) and cls.type_name == key for key, cls in BACKBONES.items())


def test_build_uses_defaults_and_config_name():
    backbone = build_backbone("my_mel", {"type": "logmel"})
    assert backbone.name == "my_mel" and backbone.sample_rate == 16000 and backbone.crop_seconds is None
    assert backbone.dim == 192
    described = backbone.describe()
    assert described["type"] == "logmel" and described["dim"] == 192 and described["sample_rate"] == 16000
    assert described["params"]["n_mels"] == 64 and described["params"]["hop_length"] == 320
    json.dumps(described)  # goes into metadata


@pytest.mark.parametrize(
    "params,message",
    [
        (
            {"type": "wavlm_xxl"},
            r"backbones\.bb\.type: unknown backbone type 'wavlm_xxl'; choose one of aisfx, distillmos, hf, logmel, mfcc, panns, resemblyzer, speech_embedding, torchaudio, whisper",
        ),
        ({}, r"backbones\.bb\.type: unknown backbone type None"),
        ({"type": "logmel", "n_mel": 32}, r"backbones\.bb\.n_mel: unknown option .*allowed options: .*n_mels"),
        ({"type": "logmel", "n_mels": 0}, r"backbones\.bb\.n_mels: must be a positive integer"),
        ({"type": "logmel", "hop_length": 1.5}, r"backbones\.bb\.hop_length: must be a positive integer"),
        ({"type": "logmel", "sample_rate": 8000, "fmax": 6000}, r"backbones\.bb\.fmax: must lie in"),
        ({"type": "mfcc", "sample_rate": -1}, r"backbones\.bb\.sample_rate: must be a positive integer"),
        ({"type": "mfcc", "crop_seconds": 0}, r"backbones\.bb\.crop_seconds: must be positive"),
        ({"type": "mfcc", "n_mfcc": 80}, r"backbones\.bb\.n_mfcc: must not exceed n_mels"),
    ],
)
def test_bad_configs_name_the_key(params, message):
    with pytest.raises(ConfigError, match=message):
        build_backbone("bb", params)


def test_declared_sample_rate_without_building():
    assert declared_sample_rate({"type": "mfcc"}) == 16000
    assert declared_sample_rate({"type": "logmel", "sample_rate": 22050, "tta": {"n_crops": 5}}) == 22050
    with pytest.raises(ConfigError, match="backbones.x.type"):
        declared_sample_rate({"type": "nope"}, name="x")


@pytest.mark.parametrize(
    "params,dim",
    [
        ({"type": "logmel", "n_mels": 40}, 120),
        ({"type": "mfcc"}, 80),
        ({"type": "mfcc", "n_mfcc": 13, "deltas": False}, 26),
    ],
)
def test_embed_batch_shape_dtype_and_determinism(params, dim):
    backbone = build_backbone("b", params)
    crops = np.stack([tone(440), tone(2000), np.zeros(16000, np.float32)])
    out = backbone.embed_batch(crops)
    assert backbone.dim == dim and out.shape == (3, dim) and out.dtype == np.float32
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, backbone.embed_batch(crops))


@pytest.mark.parametrize("backbone_type", ["logmel", "mfcc"])
def test_a_clip_embeds_the_same_alone_or_in_a_batch(backbone_type):
    backbone = build_backbone("b", {"type": backbone_type})
    quiet, loud = tone(500, amp=0.001), tone(3000, amp=0.9)
    batch = backbone.embed_batch(np.stack([quiet, loud]))
    np.testing.assert_allclose(batch[0], backbone.embed_batch(quiet[None])[0], rtol=1e-5, atol=1e-4)


def test_logmel_features_track_pitch_loudness_and_change():
    backbone = build_backbone("b", {"type": "logmel"})
    n = backbone.params["n_mels"]
    low, high, loud = tone(300), tone(3000), tone(300, amp=0.9)
    clicks = np.zeros(16000, np.float32)
    clicks[::1600] = 1.0
    mean_low, mean_high, mean_loud, _ = backbone.embed_batch(np.stack([low, high, loud, clicks]))[:, :n]
    assert np.argmax(mean_high) > np.argmax(mean_low) + 10
    assert mean_loud[np.argmax(mean_low)] == pytest.approx(mean_low.max() + 20 * np.log10(3), abs=0.5)
    delta = backbone.embed_batch(np.stack([low, clicks]))[:, 2 * n :].mean(axis=1)
    assert delta[1] > 5 * delta[0]  # a click train changes frame to frame, a steady tone does not


@pytest.mark.parametrize("backbone_type", ["logmel", "mfcc"])
def test_crops_shorter_than_the_fft_work(backbone_type):
    backbone = build_backbone("b", {"type": backbone_type})
    out = backbone.embed_batch(np.full((2, 200), 0.1, dtype=np.float32))
    assert out.shape == (2, backbone.dim) and np.isfinite(out).all()


def test_embed_batch_rejects_1d_input():
    with pytest.raises(ValueError, match=r"\(batch, samples\)"):
        build_backbone("b", {"type": "logmel"}).embed_batch(tone(440))
