"""aisfx, distillmos and resemblyzer with the real pretrained weights their PyPI packages ship."""

import numpy as np
import pytest
import torch

from audiofold.backbones import build_backbone
from audiofold.embed import extract
from audiofold.errors import ConfigError


def sounds(sr, seconds, n=3, seed=0):
    """Noise, a tone and a click train: clearly different sounds."""
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(seed)
    clicks = np.zeros_like(t)
    clicks[:: sr // 8] = 1.0
    return np.stack([0.1 * rng.standard_normal(len(t)), 0.3 * np.sin(2 * np.pi * 440 * t), clicks][:n]).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def aisfx():
    return build_backbone("sfx", {"type": "aisfx", "keep_sequence": True})


@pytest.fixture(scope="module")
def distillmos():
    return build_backbone("mos", {"type": "distillmos", "keep_sequence": True})


@pytest.fixture(scope="module")
def resemblyzer():
    return build_backbone("spk", {"type": "resemblyzer", "keep_sequence": True})


def voices(seconds, seed=0):
    """Two synthetic 'voices': glottal-like pulse trains at 110 and 220 Hz through different vowel-ish
    resonances, talking for about 1.4 s and pausing for about 1.1 s (pauses long enough for the VAD to cut)."""
    sr = 16000
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(seed)
    out = []
    for f0, formants in ((110, (700, 1200)), (220, (400, 2300))):
        pulses = np.sign(np.sin(2 * np.pi * f0 * t)) * 0.05
        voice = sum(np.sin(2 * np.pi * f * t) * pulses for f in formants) + 0.002 * rng.standard_normal(len(t))
        out.append(voice * (np.sin(2 * np.pi * 0.4 * t) > -0.2))
    return np.stack(out).astype(np.float32)


def test_resemblyzer_matches_the_packages_own_utterance_embedding(resemblyzer):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from resemblyzer import VoiceEncoder, preprocess_wav

    reference = VoiceEncoder("cpu", verbose=False)
    crops = voices(4.0)
    out = resemblyzer.embed_outputs(crops)
    assert out["X"].shape == (2, 256) and all(s.shape[1] == 256 and len(s) >= 2 for s in out["seq"])
    for mine, wave in zip(out["X"], crops):
        theirs = reference.embed_utterance(preprocess_wav(wave, source_sr=16000))
        np.testing.assert_allclose(mine / np.linalg.norm(mine), theirs, rtol=1e-4, atol=1e-5)
    assert float(out["X"][0] @ out["X"][1]) / np.prod(np.linalg.norm(out["X"], axis=1)) < 0.99
    assert len(resemblyzer.describe()["checkpoint"]["sha256"]) == 64


def test_resemblyzer_partials_follow_the_length_and_silence_option(resemblyzer):
    untrimmed = build_backbone("spk", {"type": "resemblyzer", "keep_sequence": True, "trim_silence": False})
    crops = voices(6.0)
    # 1.6 s partials starting every 0.77 s (1.3 a second) while 75 % of one still has audio: 7 in 6 s;
    # trimming the pauses shortens the crop, so fewer
    assert [len(s) for s in untrimmed.embed_outputs(crops)["seq"]] == [7, 7]
    assert all(len(s) < 7 for s in resemblyzer.embed_outputs(crops)["seq"])
    silence = np.zeros((1, 16000), np.float32)  # nothing for the VAD to keep: the crop itself is embedded
    assert np.isfinite(resemblyzer.embed_batch(silence + 1e-4)).all()
    assert untrimmed.describe()["params"]["trim_silence"] is False


def test_aisfx_loads_the_package_weights_like_the_package(aisfx):
    from aisfx import inference

    weights, datasets = torch.load(inference.get_path_modelWeights(), map_location="cpu", weights_only=False)
    reference = inference.load_bestModel(weights, datasets, "cpu")
    spec = torch.from_numpy(aisfx.log_mel(sounds(44100, 2.5)))[:, :100]
    with torch.inference_mode():
        np.testing.assert_allclose(
            aisfx.model(spec).numpy(), reference.get_embedding(spec).numpy(), rtol=1e-5, atol=1e-6
        )
    assert len(aisfx.describe()["checkpoint"]["sha256"]) == 64


def test_aisfx_blocks_pooling_and_batch_independence(aisfx):
    crops = sounds(44100, 5.0)
    out = aisfx.embed_outputs(crops)
    assert out["X"].shape == (3, 512) and [s.shape for s in out["seq"]] == [(3, 512)] * 3  # 216 frames: 3 blocks
    np.testing.assert_allclose(out["X"], np.stack([s.astype(np.float32).mean(0) for s in out["seq"]]), atol=5e-3)
    np.testing.assert_allclose(aisfx.embed_batch(crops[1:2])[0], out["X"][1], rtol=1e-4, atol=1e-5)
    cos = out["X"] @ out["X"].T / np.outer(*(2 * [np.linalg.norm(out["X"], axis=1)]))
    assert cos[0, 1] < 0.99 and cos[1, 2] < 0.99  # different sounds, different embeddings
    short = aisfx.embed_outputs(crops[:, :10000])
    assert [s.shape for s in short["seq"]] == [(1, 512)] * 3  # shorter than a block: one zero-padded block


def test_distillmos_frames_at_50_fps_across_windows(distillmos):
    crops = sounds(16000, 9.0, n=2)  # longer than its 7.68 s window: two windows
    out = distillmos.embed_outputs(crops)
    assert out["X"].shape == (2, 200) and [s.shape for s in out["seq"]] == [(450, 200)] * 2
    assert np.isfinite(out["X"]).all() and not np.allclose(out["X"][0], out["X"][1])
    np.testing.assert_allclose(distillmos.embed_batch(crops[1:]), out["X"][1:], rtol=1e-4, atol=1e-4)
    mean_std = build_backbone("m", {"type": "distillmos", "pooling": "mean_std"}).embed_batch(crops)
    assert mean_std.shape == (2, 400)
    np.testing.assert_allclose(mean_std[:, :200], out["X"], rtol=1e-4, atol=1e-4)


def test_packaged_backbones_through_multi_crop_extraction(distillmos):
    waves = list(sounds(16000, 1.2)) + [sounds(16000, 0.3, n=1)[0]]
    mos = build_backbone("mos", {"type": "distillmos", "crop_seconds": 1.0, "keep_sequence": True})
    out = extract(waves, mos, n_crops=5, keep_crops=True, progress=False)
    assert out["X"].shape == (4, 200) and out["X_crops"].shape == (4, 5, 200)
    assert len(out["seq"][3]) == 50  # the short clip: 5 identical zero-padded crops computed and kept once


def test_distillmos_int8_stays_close_to_fp32(distillmos):
    """int8 dynamic quantization of the real model's Linear layers: fidelity to fp32 (cosine)."""
    crops = sounds(16000, 3.0)
    fp32 = distillmos.embed_batch(crops)
    int8 = build_backbone("m", {"type": "distillmos", "precision": "int8"}).embed_batch(crops)
    cosine = (fp32 * int8).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)
    assert cosine.min() >= 0.99 and not np.array_equal(fp32, int8)


@pytest.mark.parametrize(
    "params,message",
    [
        ({"type": "aisfx", "sample_rate": 16000}, r"backbones\.b\.sample_rate: aisfx was trained at 44100 Hz"),
        ({"type": "aisfx", "precision": "fp16"}, r"backbones\.b\.precision: fp16 autocast is for GPU"),
        ({"type": "distillmos", "pooling": "attention"}, r"backbones\.b\.pooling: must be one of mean, mean_std"),
        ({"type": "resemblyzer", "trim_silence": "yes"}, r"backbones\.b\.trim_silence: must be true or false"),
        ({"type": "resemblyzer", "sample_rate": 22050}, r"backbones\.b\.sample_rate: resemblyzer was trained at 16000"),
    ],
)
def test_packaged_bad_options(params, message):
    with pytest.raises(ConfigError, match=message):
        build_backbone("b", params)
