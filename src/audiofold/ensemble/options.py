"""The blend step's options as one object: the ``blend.*`` keys, and the ``submission`` keys whose
decisions the blend makes on OOF rows (rounding, label-string thresholds).

``BlendOptions`` writes each option's default once, equal to the schema's (a test holds them equal),
beside the config key it comes from, and checks the values on construction with a ConfigError that
names the key. The rules ``blend`` and ``blend_nested`` pass one param per key, named by the key's
last part (``round`` for ``submission.round``); both scripts build the object with ``from_params``,
and ``blend.fit_blend`` / ``blend_files`` and ``blend_nested.nested_blend`` / ``nested_files`` take
it whole. A variation is ``dataclasses.replace(options, method="greedy")``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..postprocess import check_label_mode, check_round_mode

# blend.method's values besides auto
METHODS = ("single", "grid", "greedy", "stack")
PER_CLASS_MODES = ("auto", True, False)


def _option(config_key: str, default: Any) -> Any:
    """A field with its default and the config key it comes from."""
    return dataclasses.field(default=default, metadata={"config_key": config_key})


@dataclasses.dataclass(frozen=True)
class BlendOptions:
    """What the blend step and its nested score are asked to do; the schema describes each key."""

    method: str = _option("blend.method", "auto")
    step: float = _option("blend.step", 0.1)
    max_candidates: int = _option("blend.max_candidates", 6)
    greedy_rounds: int = _option("blend.greedy_rounds", 25)
    per_class: bool | str = _option("blend.per_class", "auto")
    per_class_min_positives: int = _option("blend.per_class_min_positives", 10)
    per_class_shrinkage: float = _option("blend.per_class_shrinkage", 10.0)
    per_class_threshold: bool | str = _option("submission.per_class_threshold", "auto")
    threshold_min_positives: int = _option("submission.threshold_min_positives", 10)
    round_mode: str = _option("submission.round", "auto")

    def __post_init__(self) -> None:
        # blend.step is checked where the grid is built (simplex_grid): a step the grid cannot use
        # is no error for greedy or stack, which never read it.
        if self.method != "auto" and self.method not in METHODS:
            raise ConfigError(f"blend.method: {self.method!r} is not one of auto, {', '.join(METHODS)}.")
        if self.max_candidates < 1:
            raise ConfigError(f"blend.max_candidates: must be >= 1, got {self.max_candidates}.")
        if self.greedy_rounds < 1:
            raise ConfigError(f"blend.greedy_rounds: must be >= 1, got {self.greedy_rounds}.")
        if self.per_class not in PER_CLASS_MODES or not isinstance(self.per_class, (bool, str)):
            raise ConfigError(f"blend.per_class: expected auto, true or false, got {self.per_class!r}.")
        check_label_mode(self.per_class_threshold)
        check_round_mode(self.round_mode)

    @classmethod
    def config_keys(cls) -> dict[str, str]:
        """Field name -> the config key it comes from (``round_mode`` -> ``submission.round``)."""
        return {field.name: field.metadata["config_key"] for field in dataclasses.fields(cls)}

    @classmethod
    def from_params(cls, params: Any) -> BlendOptions:
        """The options from a rule's params (``snakemake.params``, or a mapping): one param per config
        key, named by the key's last part; other params are ignored."""
        values = {}
        for name, key in cls.config_keys().items():
            param = key.rsplit(".", 1)[-1]
            values[name] = params[param] if isinstance(params, Mapping) else getattr(params, param)
        return cls(**values)
