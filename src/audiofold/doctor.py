"""``audiofold doctor``: is this machine ready to run the configured pipeline?

Each check returns ``Check(name, ok, detail)``; ``ok`` is None for facts that are not problems
(no GPU is fine, the pipeline runs on CPU).

Backbone weights follow docs/DESIGN.md ("Backbone"): building a backbone whose checkpoint is missing
raises ConfigError naming the file, where it was looked for and ``audiofold weights fetch NAME``;
a built neural backbone reports ``weights_status() -> {"path", "sha256", "present"}``; a backbone
without that method needs no weights.
"""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import AudiofoldError

PACKAGES = ("torch", "torchaudio", "snakemake", "dvc", "numpy", "pandas", "scikit-learn", "librosa",
            "soundfile", "soxr")
# Embedding cache per second of audio: a shard holds one float32 vector per clip, far below the
# decoded audio cache (float32 samples at the backbone rate), which dominates.
BYTES_PER_SAMPLE = 4


@dataclass
class Check:
    name: str
    ok: bool | None
    detail: str

    def line(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "info"}[self.ok]
        return f"[{mark}] {self.name}: {self.detail}"


def check_python() -> Check:
    ok = tuple(int(x) for x in platform.python_version_tuple()[:2]) >= (3, 10)
    return Check("python", ok, f"{platform.python_version()} ({'needs 3.10+' if not ok else platform.python_implementation()})")


def check_packages(names: tuple[str, ...] = PACKAGES) -> list[Check]:
    out = []
    for name in names:
        try:
            out.append(Check(name, True, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append(Check(name, False, "not installed (run `make install`)"))
    return out


def check_gpu() -> Check:
    try:
        import torch
    except ImportError:
        return Check("gpu", False, "torch not importable")
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return Check("gpu", None, f"CUDA {torch.version.cuda}: {', '.join(names)}")
    return Check("gpu", None, "torch sees no GPU; backbones run on CPU")


def check_ffmpeg() -> Check:
    path = shutil.which("ffmpeg")
    if path:
        return Check("ffmpeg", True, path)
    return Check("ffmpeg", None, "not on PATH: wav/flac/ogg/mp3 decode, m4a/aac clips will fail (apt-get install ffmpeg)")


def backbone_weights(name: str, params: dict) -> list[Check]:
    """Build the backbone as the embed step does: a missing checkpoint fails the build with a message
    naming the file and the fetch command; a built one reports its ``weights_status()`` if it has one."""
    from .backbones import build_backbone
    from .embed import split_backbone_config

    params, _ = split_backbone_config(params)  # as the embed step does
    try:
        backbone = build_backbone(name, params)
    except AudiofoldError as exc:
        return [Check(f"backbone {name}", False, str(exc))]
    status = getattr(backbone, "weights_status", None)
    if status is None:
        return [Check(f"backbone {name}", True, f"type {params['type']}: no weights needed")]
    entry = status()
    present = bool(entry.get("present"))
    sha = f", sha256 {str(entry['sha256'])[:12]}" if entry.get("sha256") else ""
    return [Check(f"backbone {name}", present, f"type {params['type']}: weights {entry.get('path')}{sha}"
                  + ("" if present else " MISSING"))]


def audio_bytes(folders: list[Path]) -> int:
    return sum(p.stat().st_size for folder in folders if folder.is_dir() for p in folder.rglob("*") if p.is_file())


def estimate_cache_bytes(config: dict, data_bytes: int) -> int:
    """Rough size of results/: decoded float32 audio per distinct backbone sample rate.

    Compressed audio is ~10x smaller than its decoded samples; a 16-bit wav ~2x; 6x is the middle
    ground used here, scaled by how the backbone rates compare with a 16 kHz source.
    """
    from .backbones import declared_sample_rate

    rates = {declared_sample_rate(p, n) for n, p in config["backbones"].items()}
    return int(data_bytes * 6 * sum(rate / 16000 for rate in rates))


def check_disk(config: dict, root: Path) -> Check:
    data = config["data"]
    folders = [Path(d) for d in {data["train_audio_dir"], data.get("test_audio_dir") or data["train_audio_dir"]}]
    data_bytes = audio_bytes(folders)
    need = estimate_cache_bytes(config, data_bytes)
    results = Path(config.get("results_dir", "results"))
    probe = results if results.exists() else root
    free = shutil.disk_usage(probe).free
    gib = 1024 ** 3
    detail = (f"{free / gib:.1f} GiB free at {probe.resolve()}; audio {data_bytes / gib:.2f} GiB -> "
              f"decode/embedding cache ~{need / gib:.2f} GiB")
    if not data_bytes:
        detail += " (audio folders empty or not made yet, e.g. the demo)"
    return Check("disk", free > need, detail)


def check_results_writable(config: dict) -> Check:
    """The results folder (or the folder it will be made in) takes new files: tried with a temp file,
    since permission bits say nothing about read-only mounts, and root passes every bit check."""
    results = Path(config.get("results_dir", "results"))
    probe = next((p for p in (results, *results.absolute().parents) if p.exists()), Path("/"))
    if not probe.is_dir():
        return Check("results", False, f"{probe} is not a folder; set results_dir to a folder path")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return Check("results", False, f"cannot write to {probe.resolve()} ({exc.strerror or exc}); make it writable "
                                       "or set results_dir to a writable folder")
    return Check("results", True, f"{results} writable" + ("" if probe == results else f" (will be made in {probe})"))


def run_checks(config_path: str | Path | None = "config.yaml") -> list[Check]:
    """Every check; the configured ones only when ``config_path`` exists and validates."""
    from .config import load_config

    checks = [check_python(), *check_packages(), check_gpu(), check_ffmpeg()]
    if config_path is None or not Path(config_path).is_file():
        checks.append(Check("config", None, f"{config_path} not found; skipped the backbone and disk checks"))
        return checks
    try:
        config = load_config(config_path)
    except AudiofoldError as exc:
        return checks + [Check("config", False, str(exc))]
    checks.append(Check("config", True, f"{config_path} valid"))
    checks.append(check_results_writable(config))  # first: nothing else matters if no result can be written
    for name, params in config["backbones"].items():
        checks += backbone_weights(name, params)
    checks.append(check_disk(config, Path(config_path).resolve().parent))
    return checks
