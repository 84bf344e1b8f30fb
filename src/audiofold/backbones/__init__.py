"""Backbone registry: ``build_backbone(name, params)`` with ``params["type"]`` naming the class."""

from __future__ import annotations

import inspect
from typing import Any

from ..errors import ConfigError
from ..registry import config_options, keyword_options
from .base import Backbone, BackboneOptionError
from .handcrafted import LogMelBackbone, MFCCBackbone
from .hf import HFBackbone
from .packaged import AisfxBackbone, DistillMOSBackbone, ResemblyzerBackbone
from .panns import PannsBackbone
from .speech_embedding import SpeechEmbeddingBackbone
from .torchaudio_ssl import TorchaudioSSLBackbone
from .whisper import WhisperBackbone

BACKBONES: dict[str, type[Backbone]] = {
    "logmel": LogMelBackbone,
    "mfcc": MFCCBackbone,
    "torchaudio": TorchaudioSSLBackbone,
    "aisfx": AisfxBackbone,
    "distillmos": DistillMOSBackbone,
    "resemblyzer": ResemblyzerBackbone,
    "whisper": WhisperBackbone,
    "speech_embedding": SpeechEmbeddingBackbone,
    "panns": PannsBackbone,
    "hf": HFBackbone,
}


def backbone_options(cls: type[Backbone]) -> dict[str, Any]:
    """Keyword options a backbone class accepts, mapped to their defaults (``inspect.Parameter.empty`` if none)."""
    return keyword_options(cls)


def backbone_class(name: str, params: dict[str, Any]) -> type[Backbone]:
    backbone_type = params.get("type")
    if backbone_type not in BACKBONES:
        raise ConfigError(
            f"backbones.{name}.type: unknown backbone type {backbone_type!r}; choose one of {', '.join(sorted(BACKBONES))}."
        )
    return BACKBONES[backbone_type]


def build_backbone(name: str, params: dict[str, Any]) -> Backbone:
    """Instantiate ``params["type"]`` with the other keys as options; ``name`` is its key under ``backbones:``."""
    cls = backbone_class(name, params)
    options = config_options(cls, "backbones", name, params)
    try:
        backbone = cls(**options)
    except BackboneOptionError as exc:
        raise ConfigError(f"backbones.{name}.{exc.key}: {exc.problem}") from None
    backbone.name = name
    return backbone


def split_backbone_config(params: dict) -> tuple[dict, dict]:
    """A ``backbones.<name>`` config entry -> (the backbone's own options, the embed step's options:
    ``tta`` keys, ``batch_size``, ``max_padding``) as ``embed_clips`` takes them."""
    backbone = {k: v for k, v in params.items() if k not in ("tta", "batch_size", "max_padding")}
    extraction = {**params.get("tta", {}), **{k: params[k] for k in ("batch_size", "max_padding") if k in params}}
    return backbone, extraction


def declared_sample_rate(params: dict[str, Any], name: str | None = None) -> int:
    """The sample rate a backbone config asks for (its ``sample_rate`` key, else the class default),
    known without building the model, so the workflow can plan the decode jobs from config alone."""
    name = name or str(params.get("type"))
    cls = backbone_class(name, params)
    rate = params.get("sample_rate", backbone_options(cls).get("sample_rate", inspect.Parameter.empty))
    if rate is None and hasattr(cls, "default_sample_rate"):  # the rate follows another option (e.g. a variant)
        rate = cls.default_sample_rate(params)
    if rate is inspect.Parameter.empty:
        raise ConfigError(f"backbones.{name}.sample_rate: required for backbone type {params['type']!r}.")
    return int(rate)


__all__ = [
    "AisfxBackbone",
    "DistillMOSBackbone",
    "BACKBONES",
    "Backbone",
    "BackboneOptionError",
    "HFBackbone",
    "LogMelBackbone",
    "MFCCBackbone",
    "PannsBackbone",
    "SpeechEmbeddingBackbone",
    "TorchaudioSSLBackbone",
    "WhisperBackbone",
    "backbone_options",
    "build_backbone",
    "declared_sample_rate",
    "split_backbone_config",
]
