"""Head interface: a model fitted per fold on embeddings, predicting P in the task's contract."""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..tasks import TaskSpec


class HeadOptionError(ConfigError):
    """A bad head option; ``build_head`` re-words it with the head's config name."""

    def __init__(self, head_type: str, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"heads.{head_type}.{key}: {problem}")


def require_positive(head_type: str, key: str, value: Any, integer: bool = False) -> Any:
    """``value`` if it is a positive number (an integer when asked), else HeadOptionError."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
        what = "a positive integer" if integer else "a positive number"
        raise HeadOptionError(head_type, key, f"must be {what}, got {value!r}.")
    return value


# Options of how the train step feeds a head rather than of the head's model, so every head type
# accepts them: build_head takes them off the config before the class sees its own options.
# train_on_crops: fit on one row per crop (tta.keep_crops) instead of the crop mean X; predictions
# stay on X.
TRAINING_OPTIONS = {"train_on_crops": False}


def require_bool(head_type: str, key: str, value: Any) -> bool:
    """``value`` if it is a boolean, else HeadOptionError (a YAML ``"yes"`` string would be truthy)."""
    if not isinstance(value, (bool, np.bool_)):
        raise HeadOptionError(head_type, key, f"must be true or false, got {value!r}.")
    return bool(value)


def apply_training_options(head: Head, options: dict[str, Any]) -> Head:
    """Set the TRAINING_OPTIONS on a built head, checking them against what the head reads."""
    train_on_crops = require_bool(head.type_name, "train_on_crops", options.get("train_on_crops", False))
    inputs = getattr(head, "inputs", "pooled")
    if train_on_crops and inputs != "pooled":
        raise HeadOptionError(
            head.type_name,
            "train_on_crops",
            f"needs inputs: pooled (per-crop embeddings are pooled vectors), but this head has inputs: {inputs}.",
        )
    head.train_on_crops = train_on_crops
    return head


class Head(abc.ABC):
    """Subclasses declare their options as keyword arguments of ``__init__``.

    ``build_head`` checks config keys against that signature, so the signature is the one
    place that lists what a head accepts.
    """

    type_name: str = ""
    train_on_crops: bool = False  # set by build_head (TRAINING_OPTIONS); train.py reads it

    def __init__(self, task: TaskSpec, seed: int = 0, **params: Any) -> None:
        self.task = task
        self.seed = int(seed)
        self.params = dict(params)

    @abc.abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray) -> Head:
        """Fit on embeddings X (n, D) and targets y (shape per task kind); return self."""

    @abc.abstractmethod
    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Map variant name -> P (n, n_outputs); single-output heads return ``{"main": P}``."""

    def student_options(self) -> dict[str, Any]:
        """Option overrides that freeze what this fitted head chose by its own inner CV (a ridge
        alpha, a logistic C, a LightGBM search): a pseudo-label student takes them, because an inner
        CV over rows labelled by the teacher itself rewards fitting the teacher, not the data."""
        return {}

    def describe(self) -> dict[str, Any]:
        """What was trained, for artifact metadata."""
        info = {"type": self.type_name, "seed": self.seed, "params": dict(self.params)}
        if self.train_on_crops:
            info["train_on_crops"] = True
        return info
