"""What the backbone and head registries share: a class's options are its keyword-only ``__init__`` args."""

from __future__ import annotations

import inspect
from typing import Any

from .errors import ConfigError


def keyword_options(cls: type) -> dict[str, Any]:
    """Keyword-only options of ``cls.__init__`` mapped to their defaults (``inspect.Parameter.empty`` if none)."""
    signature = inspect.signature(cls.__init__)
    return {p.name: p.default for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def config_options(
    cls: type, section: str, name: str, params: dict[str, Any], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``params`` without ``type``, checked against the class's options and the ``extra`` ones every
    type of the section accepts; the error names ``section.name.key``."""
    options = {k: v for k, v in params.items() if k != "type"}
    allowed = {**keyword_options(cls), **(extra or {})}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{section}.{name}.{unknown[0]}: unknown option for {section[:-1]} type {params['type']!r}; "
            f"allowed options: {', '.join(allowed) or '(none)'}."
        )
    return options


def check_config_options(config: dict[str, Any]) -> None:
    """Every backbone and head type and option name is known: checked at start-up, before any job runs.

    Option values are checked when a job builds the model (that may load weights).
    """
    from .backbones import _backbone_class
    from .embed import split_backbone_config
    from .heads import HEADS, TRAINING_OPTIONS

    for name, params in config.get("backbones", {}).items():
        own, _ = split_backbone_config(params)  # tta, batch_size, ...: the embed step's, not the class's
        config_options(_backbone_class(name, own), "backbones", name, own)
    for name, params in config.get("heads", {}).items():
        head_type = params.get("type")
        if head_type not in HEADS:
            raise ConfigError(
                f"heads.{name}.type: unknown head type {head_type!r}; choose one of {', '.join(sorted(HEADS))}."
            )
        own = {k: v for k, v in params.items() if k != "backbones"}
        config_options(HEADS[head_type], "heads", name, own, extra=TRAINING_OPTIONS)
