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
