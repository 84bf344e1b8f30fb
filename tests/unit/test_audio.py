import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from audiofold import audio
from audiofold.audio import decode_file, load_mono
from audiofold.backbones import build_backbone
from audiofold.embed import embed_clips
from audiofold.errors import DataError

from conftest import requires_tool


def sine(freq, sr, seconds, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture
def no_ffmpeg(monkeypatch):
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)


@pytest.mark.parametrize(
    "ext,fmt,subtype,tol",
    [
        ("wav", "WAV", "PCM_16", 1e-4),
        ("wav", "WAV", "PCM_24", 1e-6),
        ("wav", "WAV", "FLOAT", 0),
        ("wav", "WAV", "PCM_U8", 1e-2),
        ("wav", "WAV", "PCM_32", 1e-8),
        ("wav", "WAV", "DOUBLE", 1e-7),
        ("flac", "FLAC", "PCM_16", 1e-4),
        ("flac", "FLAC", "PCM_24", 1e-6),
    ],
)
def test_lossless_formats_decode_to_channels_first_float32(tmp_path, ext, fmt, subtype, tol):
    left, right = sine(440, 22050, 0.3), sine(660, 22050, 0.3, amp=0.25)
    path = tmp_path / f"clip.{ext}"
    sf.write(path, np.stack([left, right], axis=1), 22050, format=fmt, subtype=subtype)
    wave, sr = decode_file(path)
    assert sr == 22050 and wave.dtype == np.float32 and wave.shape == (2, len(left))
    np.testing.assert_allclose(wave, np.stack([left, right]), atol=tol)


@pytest.mark.parametrize("ext,fmt", [("ogg", "OGG"), ("mp3", "MP3")])
def test_lossy_formats_decode_close_to_source(tmp_path, ext, fmt):
    source = sine(1000, 16000, 1.0)
    path = tmp_path / f"clip.{ext}"
    sf.write(path, source, 16000, format=fmt)
    wave, sr = decode_file(path)
    assert sr == 16000 and wave.shape[0] == 1 and abs(wave.shape[1] - len(source)) < 0.05 * len(source)
    rms = np.sqrt(np.mean(wave[0] ** 2))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


def test_load_mono_downmixes_resamples_and_keeps_the_tone(tmp_path):
    tone = sine(1000, 44100, 1.0)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([tone, 0.5 * tone], axis=1), 44100, subtype="FLOAT")
    mono = load_mono(path, 16000)
    assert mono.dtype == np.float32 and mono.ndim == 1
    assert len(mono) == 16000
    spectrum = np.abs(np.fft.rfft(mono))
    assert np.argmax(spectrum) == pytest.approx(1000, abs=1)  # 1 s long: bin k is k Hz
    assert np.sqrt(np.mean(mono[1000:-1000] ** 2)) == pytest.approx(0.75 * 0.5 / np.sqrt(2), rel=0.01)


def test_load_mono_same_rate_is_untouched(tmp_path):
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, 8000).astype(np.float32)
    sf.write(tmp_path / "a.wav", wave, 8000, subtype="FLOAT")
    np.testing.assert_array_equal(load_mono(tmp_path / "a.wav", 8000), wave)


def test_max_seconds_reads_only_the_start(tmp_path, monkeypatch):
    wave = np.linspace(-0.5, 0.5, 48000 * 3, dtype=np.float32)
    sf.write(tmp_path / "long.flac", wave, 48000, subtype="PCM_24")
    read_frames = []
    real_read = sf.SoundFile.read
    monkeypatch.setattr(
        sf.SoundFile, "read", lambda self, frames=-1, **kw: read_frames.append(frames) or real_read(self, frames, **kw)
    )
    decoded, sr = decode_file(tmp_path / "long.flac", max_seconds=0.5)
    assert read_frames == [24000] and decoded.shape == (1, 24000)
    assert len(load_mono(tmp_path / "long.flac", 16000, max_seconds=0.5)) == 8000
    assert len(load_mono(tmp_path / "long.flac", 16000, max_seconds=10)) == 48000  # shorter file: whole file


def test_missing_corrupt_and_empty_files_name_the_file(tmp_path, no_ffmpeg):
    with pytest.raises(DataError, match="nothere.wav does not exist"):
        decode_file(tmp_path / "nothere.wav")
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk-not-audio")
    with pytest.raises(DataError, match=r"broken\.wav.*corrupt"):
        decode_file(bad)
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 8000)
    with pytest.raises(DataError, match=r"empty\.wav holds no audio"):
        decode_file(tmp_path / "empty.wav")


def test_non_finite_samples_are_refused(tmp_path):
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2], dtype=np.float32), 8000, subtype="FLOAT")
    with pytest.raises(DataError, match=r"nan\.wav contains NaN"):
        load_mono(tmp_path / "nan.wav", 8000)


def test_m4a_without_ffmpeg_says_how_to_fix(tmp_path, no_ffmpeg):
    path = tmp_path / "clip.m4a"
    path.write_bytes(b"\x00\x00\x00\x18ftypM4A not really")
    with pytest.raises(DataError, match=r"clip\.m4a.*apt-get install ffmpeg.*convert"):
        decode_file(path)


FAKE_FFMPEG = """#!{python}
# Stand-in for ffmpeg: "decodes" by reading the input with soundfile; fails on request.
import sys, soundfile as sf
args = sys.argv[1:]
src, dst = args[args.index("-i") + 1], args[-1]
if "fail" in src:
    sys.stderr.write("Invalid data found when processing input\\n")
    sys.exit(1)
data, sr = sf.read(src, dtype="float32", always_2d=True)
if "-t" in args:
    data = data[: int(float(args[args.index("-t") + 1]) * sr)]
sf.write(dst, data, sr, format="WAV", subtype="FLOAT")
"""


@pytest.fixture
def fake_ffmpeg(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "ffmpeg"
    exe.write_text(FAKE_FFMPEG.format(python=sys.executable))
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")


def test_m4a_goes_through_ffmpeg(tmp_path, fake_ffmpeg):
    tone = sine(440, 16000, 1.0)
    path = tmp_path / "clip.m4a"  # wav bytes under an m4a name: only the fake ffmpeg reads it
    sf.write(path, np.stack([tone, tone], axis=1), 16000, format="WAV", subtype="FLOAT")
    wave, sr = decode_file(path)
    assert sr == 16000 and wave.shape == (2, 16000)
    np.testing.assert_allclose(wave[0], tone, atol=1e-7)
    assert len(load_mono(path, 16000, max_seconds=0.25)) == 4000


def test_ffmpeg_failure_names_the_file(tmp_path, fake_ffmpeg):
    path = tmp_path / "fail.webm"
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"fail\.webm with ffmpeg: Invalid data"):
        decode_file(path)


# m4a is optional for users (needs ffmpeg); .ci/run installs ffmpeg, so CI runs this for real.
@requires_tool("ffmpeg", why="encodes and decodes a real m4a")
def test_real_m4a_round_trip_through_ffmpeg(tmp_path):
    wav = tmp_path / "clip.wav"
    sf.write(wav, np.stack([sine(440, 22050, 1.0)] * 2, axis=1), 22050)
    m4a = tmp_path / "clip.m4a"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(wav), "-c:a", "aac", "-b:a", "128k", str(m4a)], check=True
    )
    wave, sr = decode_file(m4a)
    assert sr == 22050 and wave.shape[0] == 2 and abs(wave.shape[1] - 22050) < 2048  # AAC priming/padding
    mono = load_mono(m4a, 16000)
    spectrum = np.abs(np.fft.rfft(mono[2000:14000]))
    assert abs(np.argmax(spectrum) * 16000 / 12000 - 440) < 5  # the tone survives decode + resample


def test_embed_fails_on_bad_clip_naming_it_without_writing(tmp_path, no_ffmpeg):
    sf.write(tmp_path / "ok.wav", np.zeros(800, dtype=np.float32), 8000)
    (tmp_path / "bad.flac").write_bytes(b"fLaC broken")
    rows = [("ok", str(tmp_path / "ok.wav"), "decode"), ("bad", str(tmp_path / "bad.flac"), "decode")]
    backbone = build_backbone("logmel", {"type": "logmel", "sample_rate": 8000, "n_mels": 16})
    out = tmp_path / "shard.npz"
    with pytest.raises(DataError, match=r"bad\.flac"):
        embed_clips(rows, backbone, out, max_seconds=None)
    assert not out.exists() and not list(tmp_path.glob("shard*"))
