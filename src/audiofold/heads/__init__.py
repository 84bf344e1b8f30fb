"""Head registry: ``build_head(params, task, seed)`` with ``params["type"]`` naming the class."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..registry import config_options, keyword_options
from ..tasks import TaskSpec
from .base import Head, HeadOptionError
from .knn import KNNHead
from .lgbm import LGBMHead
from .linear import LinearHead
from .mlp import MLPHead
from .prompt import PromptHead
from .va import VAHead

HEADS: dict[str, type[Head]] = {
    "linear": LinearHead,
    "knn": KNNHead,
    "lgbm": LGBMHead,
    "mlp": MLPHead,
    "prompt": PromptHead,
    "va": VAHead,
}


def head_options(cls: type[Head]) -> list[str]:
    """Keyword options a head class accepts (its ``__init__`` keywords after task and seed)."""
    return list(keyword_options(cls))


def build_head(params: dict[str, Any], task: TaskSpec, seed: int, name: str | None = None) -> Head:
    """Instantiate the head ``params["type"]`` with the other keys as options.

    ``name`` is the head's key under ``heads:`` in config.yaml (defaults to its type); it only
    makes error messages point at the right key.
    """
    head_type = params.get("type")
    name = name or str(head_type)
    if head_type not in HEADS:
        raise ConfigError(
            f"heads.{name}.type: unknown head type {head_type!r}; choose one of {', '.join(sorted(HEADS))}."
        )
    cls = HEADS[head_type]
    options = config_options(cls, "heads", name, params)
    try:
        return cls(task, seed, **options)
    except HeadOptionError as exc:
        raise ConfigError(f"heads.{name}.{exc.key}: {exc.problem}") from None


__all__ = [
    "HEADS",
    "Head",
    "HeadOptionError",
    "KNNHead",
    "LGBMHead",
    "LinearHead",
    "MLPHead",
    "PromptHead",
    "VAHead",
    "build_head",
    "head_options",
]
