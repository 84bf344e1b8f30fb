"""Pretrained checkpoints: where they are looked for, their identity, and the explicit fetch step.

Nothing downloads during a run: backbones resolve their checkpoint when they are built and fail
with a message naming the file, the places searched and the ``audiofold weights fetch`` command.
Hugging Face models (the ``hf`` backbone) live in the Hugging Face cache ($HF_HOME/hub) and are
fetched with ``audiofold weights fetch hf:<model id>``; CTranslate2 Whisper models (the ``whisper``
backbone) likewise with ``audiofold weights fetch whisper:<size>`` (faster-whisper's conversions).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .io import atomic_path, file_sha256  # noqa: F401 - file_sha256 re-exported for the CLI

TORCHAUDIO_URL = "https://download.pytorch.org/torchaudio/models/"


@dataclass(frozen=True)
class WeightsSpec:
    """A fetchable checkpoint: ``name`` as used by ``audiofold weights fetch``, its file name and URL."""

    name: str
    filename: str
    url: str


def torchaudio_bundle(name: str):
    """The torchaudio pipeline bundle for a lower-case bundle name (e.g. ``wavlm_base_plus``)."""
    # deferred: torchaudio (and torch) take seconds to load; only model jobs need them
    from torchaudio import pipelines

    return getattr(pipelines, name.upper())


# Lower-case torchaudio bundle names the torchaudio backbone supports (SSL encoders and their ASR fine-tunes).
TORCHAUDIO_BUNDLES = (
    "wavlm_base",
    "wavlm_base_plus",
    "wavlm_large",
    "wav2vec2_base",
    "wav2vec2_large",
    "wav2vec2_large_lv60k",
    "wav2vec2_xlsr53",
    "wav2vec2_asr_base_10m",
    "wav2vec2_asr_base_100h",
    "wav2vec2_asr_base_960h",
    "wav2vec2_asr_large_960h",
    "wav2vec2_asr_large_lv60k_960h",
    "hubert_base",
    "hubert_large",
    "hubert_xlarge",
    "hubert_asr_large",
)


# Official PANNs checkpoints (Kong et al., Zenodo record 3987831).
PANNS_FILES = {"panns_cnn14": "Cnn14_mAP=0.431.pth", "panns_cnn14_16k": "Cnn14_16k_mAP=0.438.pth"}
PANNS_URL = "https://zenodo.org/record/3987831/files/"


def known_weights() -> tuple[str, ...]:
    return (*TORCHAUDIO_BUNDLES, *PANNS_FILES)


def weights_spec(name: str) -> WeightsSpec:
    """The fetchable checkpoint called ``name``; ConfigError listing the known names otherwise."""
    key = name.lower()
    if key in PANNS_FILES:
        filename = PANNS_FILES[key]
        return WeightsSpec(key, filename, PANNS_URL + filename.replace("=", "%3D") + "?download=1")
    if key in TORCHAUDIO_BUNDLES:
        filename = torchaudio_bundle(key)._path  # torchaudio keeps the file name in a private field only
        return WeightsSpec(key, filename, TORCHAUDIO_URL + filename)
    raise ConfigError(f"unknown weights {name!r}; known: {', '.join(known_weights())}.")


def checkpoint_dir() -> Path:
    """Where torch hub caches checkpoints: ``$TORCH_HOME/hub/checkpoints`` (default ~/.cache/torch)."""
    # deferred: torch takes seconds to load, and only the jobs that run a model need it
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def fetch_command(name: str) -> str:
    return f"audiofold weights fetch {name}"


def resolve_checkpoint(name: str, explicit: str | os.PathLike | None) -> Path:
    """The checkpoint file to load: ``explicit`` when given, else the file in ``checkpoint_dir()``.

    ConfigError (worded as the problem with the ``checkpoint`` option) when the file is missing.
    """
    spec = weights_spec(name)
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"checkpoint file {str(path)!r} does not exist. Fix the path, or remove the key to use "
                f"{checkpoint_dir() / spec.filename} (fetch it with `{fetch_command(spec.name)}` on a machine with internet)."
            )
        return path
    path = checkpoint_dir() / spec.filename
    if not path.is_file():
        raise ConfigError(
            f"weights {spec.filename!r} for {spec.name} are not on this machine; looked in {path.parent} "
            f"($TORCH_HOME/hub/checkpoints). Run `{fetch_command(spec.name)}` on a machine with internet (it writes "
            f"them there; copy that file to {path.parent} here), or set `checkpoint:` to the file's path."
        )
    return path


def fetch(
    name: str, dest_dir: str | os.PathLike | None = None, progress: bool = True, revision: str | None = None
) -> Path:
    """Download ``name``'s checkpoint into ``dest_dir`` (default ``checkpoint_dir()``), atomically.

    ``hf:<model id>`` downloads a Hugging Face model snapshot into the Hugging Face cache
    (``dest_dir`` as its cache_dir) and returns the snapshot folder."""
    # deferred: torch takes seconds to load, and only the jobs that run a model need it
    import torch.hub

    if name.startswith(HF_PREFIX):
        return fetch_hf(name[len(HF_PREFIX) :], cache_dir=dest_dir, revision=revision)
    if name.startswith(WHISPER_PREFIX):
        return fetch_hf(faster_whisper_repo(name[len(WHISPER_PREFIX) :]), cache_dir=dest_dir, revision=revision)
    if revision is not None:
        raise ConfigError(f"--revision is for hf:<model id> only; {name!r} is a fixed checkpoint file.")
    spec = weights_spec(name)
    dest = Path(dest_dir) if dest_dir is not None else checkpoint_dir()
    target = dest / spec.filename
    if target.is_file():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        torch.hub.download_url_to_file(spec.url, str(tmp), progress=progress)
    return target


# Hugging Face models: ``hf:<model id>`` for the fetch command; the cache is huggingface_hub's own.
HF_PREFIX = "hf:"
# Weight files in the order transformers prefers them (safetensors first; an index names the shards).
HF_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def hf_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The Hugging Face hub cache that ``cache_dir`` names, or huggingface_hub's default ($HF_HOME/hub)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    # deferred: only the Hub cache's users (weights commands, HF backbones) need it
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hf_fetch_command(model: str, revision: str | None = None, cache_dir: str | os.PathLike | None = None) -> str:
    command = fetch_command(HF_PREFIX + model)
    if revision is not None:
        command += f" --revision {revision}"
    if cache_dir is not None:
        command += f" --dest {cache_dir}"
    return command


def hf_weight_files(snapshot_dir: str | os.PathLike) -> list[Path]:
    """The weight file(s) transformers loads from a model folder: one file, or the shards an index lists."""
    folder = Path(snapshot_dir)
    for name in HF_WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            if name.endswith(".index.json"):
                shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
                return [folder / shard for shard in shards]
            return [path]
    return []


def fetch_hf(model: str, cache_dir: str | os.PathLike | None = None, revision: str | None = None) -> Path:
    """Download a Hugging Face model snapshot (config, feature extractor and one weight format) into
    the Hugging Face cache; returns the snapshot folder (``models--ORG--NAME/snapshots/<commit>``)."""
    # deferred: only the Hub cache's users (weights commands, HF backbones) need it
    from huggingface_hub import HfApi, snapshot_download

    files = HfApi().list_repo_files(model, revision=revision)
    # a CTranslate2 model's weights are model.bin, beside no safetensors
    weights_format = "*.safetensors" if any(f.endswith(".safetensors") for f in files) else "*.bin"
    return Path(
        snapshot_download(
            model,
            revision=revision,
            cache_dir=None if cache_dir is None else str(cache_dir),
            allow_patterns=["*.json", "*.txt", weights_format],
        )
    )


# CTranslate2 Whisper models: ``whisper:<size>`` (tiny.en ships in a package; the rest are fetched).
WHISPER_PREFIX = "whisper:"
WHISPER_SIZES = ("tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en", "large-v3")


def faster_whisper_repo(size: str) -> str:
    """The Hugging Face repository of faster-whisper's CTranslate2 conversion of Whisper ``size``."""
    return f"Systran/faster-whisper-{size}"


def cached_snapshot(repo: str, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The newest local snapshot folder of a Hugging Face repository, without any network access."""
    # deferred: only the Hub cache's users (weights commands, HF backbones) need it
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, local_files_only=True, cache_dir=cache_dir))
    except LocalEntryNotFoundError:
        return None
