"""Head registry: ``build_head(params, task, seed)`` with ``params["type"]`` naming the class."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..registry import config_options, keyword_options
from ..tasks import TaskSpec
from .base import TRAINING_OPTIONS, Head, HeadOptionError, apply_training_options

# type -> (module, class). A head's module is imported when the head is asked for, so a job that
# trains a linear or kNN head does not pay torch's import (~3 s per job).
_HEAD_CLASSES = {
    "linear": (".linear", "LinearHead"),
    "knn": (".knn", "KNNHead"),
    "lgbm": (".lgbm", "LGBMHead"),
    "mlp": (".mlp", "MLPHead"),
    "prompt": (".prompt", "PromptHead"),
    "va": (".va", "VAHead"),
}


class _LazyHeads(Mapping):
    """Head type -> class, importing each head's module on first use."""

    def __getitem__(self, head_type: str) -> type[Head]:
        module, cls = _HEAD_CLASSES[head_type]
        return getattr(importlib.import_module(module, __name__), cls)

    def __iter__(self):
        return iter(_HEAD_CLASSES)

    def __len__(self) -> int:
        return len(_HEAD_CLASSES)


HEADS: Mapping[str, type[Head]] = _LazyHeads()


def __getattr__(name: str):
    for head_type, (_, cls) in _HEAD_CLASSES.items():
        if cls == name:
            return HEADS[head_type]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    options = config_options(cls, "heads", name, params, extra=TRAINING_OPTIONS)
    training = {k: options.pop(k) for k in TRAINING_OPTIONS if k in options}
    try:
        return apply_training_options(cls(task, seed, **options), training)
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
    "TRAINING_OPTIONS",
    "VAHead",
    "build_head",
    "head_options",
]
