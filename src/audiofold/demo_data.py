"""The embedded demo data set: synthetic acoustic scenes with learnable labels, generated locally.

Each clip mixes a few events of five types (pure tone, chirp, band-noise burst, click train,
harmonic stack) over quiet background noise, and is written in a random format (wav, flac, ogg,
mp3), sample rate, channel count and sample type, so the pipeline meets the variety of real data.
All event energy stays below 4 kHz, so the content is the same at every sample rate (8 kHz included).

Labels per kind are computed from the scene, so a linear model on log-mel statistics can learn them:
- regression: ``rating`` 0..5 in 0.5 steps, rising with event rate, loudness and brightness (spectral tilt);
- multitarget: ``valence`` (brightness, share of tonal events) and ``arousal`` (event rate, loudness);
- classification: ``scene``, the dominant event type;
- multilabel: ``labels``, the event types present (FSD 2019 style: ``fname`` with the extension).

Same seed, same files: wav, flac and mp3 are byte-identical (float wavs are written with scipy,
because libsndfile stamps them with the time of writing); ogg differs only in the Ogg stream serial
number libsndfile draws at random, so its decoded audio is identical.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from scipy import signal
from scipy.io import wavfile

from .io import atomic_path, write_csv

EVENT_TYPES = ("tone", "chirp", "noise_burst", "click_train", "harmonic_stack")
KINDS = ("regression", "multitarget", "classification", "multilabel")
CLIP_SECONDS = (1.0, 4.0)  # clip lengths are uniform in this range
SAMPLE_RATES = (8000, 16000, 22050, 32000, 44100, 48000)
# extension -> (soundfile format, subtypes drawn from)
FORMATS = {
    "wav": ("WAV", ("PCM_16", "PCM_24", "FLOAT")),
    "flac": ("FLAC", ("PCM_16", "PCM_24")),
    "ogg": ("OGG", ("VORBIS",)),
    "mp3": ("MP3", ("MPEG_LAYER_III",)),
}
MAX_HZ = 3500.0  # below the 4 kHz Nyquist of the 8 kHz files
RAMP_SECONDS = 0.01


@dataclasses.dataclass
class Event:
    kind: str
    start: float  # seconds
    duration: float  # seconds
    gain_db: float  # RMS level re full scale


# ---- event synthesis (unit RMS, then scaled) -----------------------------------------------
# Each type has its own spectral region and time pattern, so log-mel band statistics separate them.
def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _bandpass(x: np.ndarray, low: float, high: float, sr: int) -> np.ndarray:
    sos = signal.butter(4, [low, min(high, 0.45 * sr)], btype="bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, x)


@functools.cache
def _lowpass_sos(sr: int) -> np.ndarray:
    return signal.butter(4, min(MAX_HZ, 0.45 * sr), btype="lowpass", fs=sr, output="sos")


def _synth(event: Event, rng: np.random.Generator, sr: int) -> np.ndarray:
    n = max(2, int(event.duration * sr))
    t = np.arange(n) / sr
    if event.kind == "tone":  # a high steady whistle
        x = np.sin(2 * np.pi * _log_uniform(rng, 1800, 3200) * t + rng.uniform(0, 2 * np.pi))
    elif event.kind == "chirp":  # a wide sweep, up or down
        f0, f1 = _log_uniform(rng, 200, 500), _log_uniform(rng, 2000, MAX_HZ)
        if rng.random() < 0.5:
            f0, f1 = f1, f0
        x = signal.chirp(t, f0, t[-1], f1, method="logarithmic")
    elif event.kind == "noise_burst":  # band noise in the mid range
        centre = _log_uniform(rng, 400, 1500)
        x = _bandpass(rng.standard_normal(n), centre / 1.5, centre * 1.5, sr)
    elif event.kind == "click_train":  # decaying "pings" at a steady rate: impulsive, frame-to-frame change
        centre, rate = _log_uniform(rng, 600, 1600), rng.uniform(6, 25)
        k = np.arange(int(0.006 * sr)) / sr
        ping = np.exp(-k / 0.0015) * np.sin(2 * np.pi * centre * k)
        impulses = np.zeros(n)
        impulses[(np.arange(0, event.duration, 1 / rate) * sr).astype(int).clip(max=n - 1)] = 1.0
        x = signal.fftconvolve(impulses, ping)[:n]
    elif event.kind == "harmonic_stack":  # a low voice-like pitch with 1/k harmonics
        f0 = _log_uniform(rng, 100, 250)
        harmonics = np.arange(1, int(MAX_HZ // f0) + 1)
        x = ((1.0 / harmonics)[:, None] * np.sin(2 * np.pi * f0 * harmonics[:, None] * t)).sum(axis=0)
    else:  # pragma: no cover - EVENT_TYPES lists every branch
        raise ValueError(event.kind)
    x = x / (np.sqrt(np.mean(x**2)) + 1e-12)
    x *= signal.windows.tukey(n, alpha=min(1.0, 2 * RAMP_SECONDS / event.duration))  # no clicks at the edges
    return x * 10 ** (event.gain_db / 20)


# ---- scenes and labels ---------------------------------------------------------------------
def _place(rng: np.random.Generator, kind: str, duration: float, gain_db: float) -> Event:
    length = min(rng.uniform(0.25, 0.9), duration)
    return Event(kind, rng.uniform(0, duration - length), length, gain_db)


def _scene(task: str, rng: np.random.Generator, duration: float, dominant: int) -> list[Event]:
    if task == "classification":  # 2-3 loud events of the dominant type, 0-2 quiet distractors
        others = [k for i, k in enumerate(EVENT_TYPES) if i != dominant]
        events = [_place(rng, EVENT_TYPES[dominant], duration, rng.uniform(-20, -8)) for _ in range(rng.integers(2, 4))]
        events += [
            _place(rng, str(rng.choice(others)), duration, rng.uniform(-36, -26)) for _ in range(rng.integers(0, 3))
        ]
        return events
    if task == "multilabel":  # 1-3 distinct types, each heard 1-2 times
        present = rng.choice(len(EVENT_TYPES), size=rng.integers(1, 4), replace=False)
        return [
            _place(rng, EVENT_TYPES[k], duration, rng.uniform(-24, -10))
            for k in present
            for _ in range(rng.integers(1, 3))
        ]
    return [
        _place(rng, str(rng.choice(EVENT_TYPES)), duration, rng.uniform(-30, -10)) for _ in range(rng.integers(1, 7))
    ]


def _render(events: list[Event], rng: np.random.Generator, sr: int, duration: float, channels: int) -> np.ndarray:
    """(n, channels) float32 mix of the events over background noise."""
    n = int(round(duration * sr))
    mono = np.zeros(n)
    for event in events:
        x = _synth(event, rng, sr)
        start = min(int(event.start * sr), n - len(x))
        mono[start : start + len(x)] += x
    background_db = rng.uniform(-50, -40)
    out = np.empty((n, channels))
    for c in range(channels):
        noise = signal.sosfilt(_lowpass_sos(sr), rng.standard_normal(n))
        noise *= 10 ** (background_db / 20) / (np.sqrt(np.mean(noise**2)) + 1e-12)
        out[:, c] = mono * (1.0 if channels == 1 else rng.uniform(0.75, 1.0)) + noise
    peak = np.abs(out).max()
    if peak > 0.95:  # keep integer formats from clipping
        out *= 0.95 / peak
    return out.astype(np.float32)


def _loudness_and_tilt(mono: np.ndarray, sr: int) -> tuple[float, float]:
    """Level (dB re full scale) and spectral tilt (dB of energy above vs. below 800 Hz) of the mix.

    The tilt saturates at +-20 dB: beyond that one side holds only background noise, and an
    unbounded ratio would give a few clips extreme labels.
    """
    freqs, power = signal.welch(mono.astype(np.float64), fs=sr, nperseg=min(len(mono), 2048))
    low = power[(freqs >= 50) & (freqs < 800)].sum()
    high = power[(freqs >= 800) & (freqs <= MAX_HZ + 500)].sum()
    loudness_db = 10 * np.log10(np.mean(mono.astype(np.float64) ** 2) + 1e-12)
    tilt_db = np.clip(10 * np.log10((high + 1e-12) / (low + 1e-12)), -20, 20)
    return float(loudness_db), float(tilt_db)


def _labels(
    task: str, events: list[Event], audio: np.ndarray, sr: int, duration: float, dominant: int
) -> dict[str, Any]:
    if task == "classification":
        return {"scene": EVENT_TYPES[dominant]}
    if task == "multilabel":
        return {"labels": ",".join(sorted({e.kind for e in events}))}
    loudness_db, tilt_db = _loudness_and_tilt(audio.mean(axis=1), sr)
    rate = len(events) / duration  # events per second
    if task == "regression":  # busier, louder, brighter scenes rate higher
        raw = 2.5 + 0.6 * (rate - 1.5) + 0.08 * (loudness_db + 22) + 0.08 * tilt_db
        return {"rating": float(np.clip(np.round(raw * 2) / 2, 0, 5)) + 0.0}  # + 0.0 turns -0.0 into 0.0
    # multitarget: bright, tonal scenes are pleasant; fast, loud ones are arousing; loudness feeds both
    energy = np.array([10 ** (e.gain_db / 10) * e.duration for e in events])
    tonal = energy[[e.kind in ("tone", "harmonic_stack") for e in events]].sum() / energy.sum()
    valence = np.tanh(0.06 * tilt_db + 0.5 * (tonal - 0.4) + 0.03 * (loudness_db + 22))
    arousal = np.tanh(0.5 * (rate - 1.5) + 0.05 * (loudness_db + 22))
    return {"valence": round(float(valence), 4), "arousal": round(float(arousal), 4)}


# ---- writing -------------------------------------------------------------------------------
def _write_audio(path: Path, audio: np.ndarray, sr: int, fmt: str, subtype: str) -> None:
    with atomic_path(path) as tmp:  # the temp name has no extension, so name the format explicitly
        if (fmt, subtype) == ("WAV", "FLOAT"):
            # libsndfile stamps float WAVs with the time of writing (PEAK chunk); scipy's writer does not
            wavfile.write(tmp, sr, audio)
        else:
            sf.write(tmp, audio, sr, format=fmt, subtype=subtype)


def _make_split(
    out_dir: Path, split: str, prefix: str, n: int, task: str, seed: int
) -> tuple[list[dict], Counter, Counter]:
    split_rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    # balanced classes, shuffled (used by classification only)
    dominants = split_rng.permutation(np.arange(n) % len(EVENT_TYPES))
    rows, formats, rates = [], Counter(), Counter()
    for i in range(n):
        rng = np.random.default_rng([seed, 0 if split == "train" else 1, i + 1])
        ext = str(rng.choice(list(FORMATS)))
        fmt, subtypes = FORMATS[ext]
        sr = int(rng.choice(SAMPLE_RATES))
        channels = int(rng.integers(1, 3))
        duration = round(float(rng.uniform(*CLIP_SECONDS)), 3)
        events = _scene(task, rng, duration, int(dominants[i]))
        audio = _render(events, rng, sr, duration, channels)
        clip_id = f"{prefix}{i:04d}"
        _write_audio(out_dir / split / f"{clip_id}.{ext}", audio, sr, fmt, str(rng.choice(subtypes)))
        key = f"{clip_id}.{ext}" if task == "multilabel" else clip_id
        rows.append({"id": key, **_labels(task, events, audio, sr, duration, int(dominants[i]))})
        formats[ext] += 1
        rates[sr] += 1
    return rows, formats, rates


def generate_demo(out_dir: str | os.PathLike, kind: str, n_train: int = 240, n_test: int = 60, seed: int = 7) -> dict:
    """Write ``train.csv``, ``test.csv``, ``sample_submission.csv``, ``train/`` and ``test/`` into ``out_dir``."""
    if kind not in KINDS:
        raise ValueError(f"demo kind must be one of {KINDS}, got {kind!r}")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"need at least one training and one test clip, got n_train={n_train}, n_test={n_test}")
    out_dir = Path(out_dir)
    for split in ("train", "test"):
        # the pipeline finds a clip by trying extensions, so a stale clip of another format could win
        if (out_dir / split).is_dir() and any((out_dir / split).iterdir()):
            raise FileExistsError(
                f"{out_dir / split} is not empty; generate the demo into a new folder or delete it first."
            )
    id_column = "fname" if kind == "multilabel" else "clip_id"
    train_rows, formats, rates = _make_split(out_dir, "train", "tr", n_train, kind, seed)
    test_rows, test_formats, test_rates = _make_split(out_dir, "test", "te", n_test, kind, seed)
    train = pd.DataFrame(train_rows).rename(columns={"id": id_column})
    test_ids = pd.Series([r["id"] for r in test_rows], name=id_column)
    label_columns = [c for c in train.columns if c != id_column]
    classes = sorted(EVENT_TYPES) if kind in ("classification", "multilabel") else None

    sample = pd.DataFrame({id_column: test_ids})
    if kind == "multilabel":
        for name in classes:
            sample[name] = 0
    elif kind == "classification":
        sample["scene"] = classes[0]
    else:
        for column in label_columns:
            sample[column] = 0.0 if kind == "multitarget" else 0

    paths = {
        "train_csv": out_dir / "train.csv",
        "test_csv": out_dir / "test.csv",
        "sample_submission": out_dir / "sample_submission.csv",
        "train_audio_dir": out_dir / "train",
        "test_audio_dir": out_dir / "test",
    }
    write_csv(paths["train_csv"], train)
    write_csv(paths["test_csv"], test_ids.to_frame())
    write_csv(paths["sample_submission"], sample)
    return {
        "kind": kind,
        "seed": seed,
        "n_train": n_train,
        "n_test": n_test,
        "id_column": id_column,
        "label_columns": label_columns,
        "classes": classes,
        "paths": {k: str(v) for k, v in paths.items()},
        "formats": dict(sorted((formats + test_formats).items())),
        "sample_rates": dict(sorted((rates + test_rates).items())),
    }


# outputs key of the demo_data rule -> key of generate_demo's "paths"
_RULE_OUTPUTS = {
    "train": "train_csv",
    "test": "test_csv",
    "sample": "sample_submission",
    "train_audio": "train_audio_dir",
    "test_audio": "test_audio_dir",
}


def materialise_demo(out_dir: str | os.PathLike, demo: dict, outputs: dict[str, str] | None = None) -> dict:
    """Generate the demo set (``demo`` = config's ``demo:`` section) in a temp folder, then move each
    piece into place, so an interrupted run never leaves a half-written data set under the final names.

    ``outputs`` maps the demo_data rule's output names (train, test, sample, train_audio, test_audio)
    to paths; pieces it does not name go into ``out_dir`` under their usual names.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unknown = set(outputs or {}) - set(_RULE_OUTPUTS)
    if unknown:
        raise ValueError(f"unknown demo outputs {sorted(unknown)}; expected some of {sorted(_RULE_OUTPUTS)}")
    targets = {_RULE_OUTPUTS[name]: Path(path) for name, path in (outputs or {}).items()}
    with tempfile.TemporaryDirectory(prefix=".tmp-demo-", dir=out_dir) as tmp:
        info = generate_demo(
            tmp,
            kind=demo.get("kind", "regression"),
            n_train=demo.get("n_train", 240),
            n_test=demo.get("n_test", 60),
            seed=demo.get("seed", 7),
        )
        for key, source in info["paths"].items():
            target = targets.get(key, out_dir / Path(source).name)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir():  # a previous demo's audio folder
                shutil.rmtree(target)
            os.replace(source, target)
            info["paths"][key] = str(target)
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m audiofold.demo_data", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", help="folder to write train.csv, test.csv, sample_submission.csv, train/, test/")
    parser.add_argument("--kind", choices=KINDS, default="regression")
    parser.add_argument("--n-train", type=int, default=240)
    parser.add_argument("--n-test", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    info = generate_demo(args.out_dir, args.kind, n_train=args.n_train, n_test=args.n_test, seed=args.seed)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
