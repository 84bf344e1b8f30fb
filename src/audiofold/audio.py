"""Decode audio files to mono float32 waves at the sample rate a backbone asks for.

soundfile (libsndfile) reads wav/flac/ogg/mp3 and the other formats it knows; anything else
(m4a, aac, mp4, webm, ...) goes through ffmpeg when it is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import DataError

# Containers libsndfile never reads: skip straight to ffmpeg instead of a doomed soundfile attempt.
FFMPEG_ONLY_EXTENSIONS = {".m4a", ".aac", ".mp4", ".m4b", ".webm", ".wma", ".mka", ".mkv", ".amr"}
ZERO_FILL_SECONDS = 1.0


def decode_file(path: str | os.PathLike, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """The file's audio as float32 (channels, n) and its sample rate.

    With ``max_seconds`` only the first ``max_seconds`` are read, so a long file never has to fit
    in memory whole.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"audio file {path} does not exist (or is not a file); check the manifest paths.")
    if path.suffix.lower() not in FFMPEG_ONLY_EXTENSIONS:
        try:
            wave, sr = _decode_soundfile(path, max_seconds)
        except sf.SoundFileError as exc:
            if shutil.which("ffmpeg") is None:
                raise DataError(
                    f"cannot decode audio file {path}: {exc}. The file may be corrupt or truncated, or in a "
                    "format libsndfile does not read: re-export it, or install ffmpeg (`apt-get install ffmpeg`) "
                    "so audiofold can decode it."
                ) from None
            wave, sr = _decode_ffmpeg(path, max_seconds)
    elif shutil.which("ffmpeg") is None:
        raise DataError(
            f"cannot decode audio file {path}: {path.suffix} files need ffmpeg, which is not installed. "
            "Install it (`apt-get install ffmpeg`) or convert the file to wav/flac."
        )
    else:
        wave, sr = _decode_ffmpeg(path, max_seconds)
    if wave.shape[1] == 0:
        raise DataError(f"audio file {path} holds no audio samples; remove it from the table or replace it.")
    return wave, sr


def _decode_soundfile(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    with sf.SoundFile(path) as f:
        frames = -1 if max_seconds is None else int(np.ceil(max_seconds * f.samplerate))
        data = f.read(frames=frames, dtype="float32", always_2d=True)
        return np.ascontiguousarray(data.T), int(f.samplerate)


def _decode_ffmpeg(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """ffmpeg -> temporary float wav (a seekable file gets a correct header, unlike a pipe) -> soundfile."""
    with tempfile.TemporaryDirectory(prefix="audiofold-ffmpeg-") as tmp:
        wav = Path(tmp) / "decoded.wav"
        limit = [] if max_seconds is None else ["-t", f"{max_seconds:.6f}"]
        cmd = [
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            str(path),
            *limit,
            "-vn",
            "-c:a",
            "pcm_f32le",
            "-f",
            "wav",
            str(wav),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not wav.is_file():
            detail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit code {proc.returncode}"
            raise DataError(
                f"cannot decode audio file {path} with ffmpeg: {detail}. The file may be corrupt; "
                "re-export it or convert it to wav/flac."
            )
        try:
            return _decode_soundfile(wav, None)
        except sf.SoundFileError as exc:
            raise DataError(f"cannot decode audio file {path}: ffmpeg output unreadable ({exc}).") from None


def load_mono(path: str | os.PathLike, sr: int, max_seconds: float | None = None) -> np.ndarray:
    """Mono float32 wave at ``sr``: decode, average the channels, resample (soxr HQ), truncate."""
    wave, file_sr = decode_file(path, max_seconds)
    mono = wave.mean(axis=0, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise DataError(f"audio file {path} contains NaN or infinite samples; re-export it.")
    if file_sr != sr:
        mono = soxr.resample(mono, file_sr, sr, quality="HQ").astype(np.float32, copy=False)
    if max_seconds is not None:  # the decoder rounds up to whole frames (and resampling adds its own)
        mono = mono[: int(round(max_seconds * sr))]
    return np.ascontiguousarray(mono, dtype=np.float32)
