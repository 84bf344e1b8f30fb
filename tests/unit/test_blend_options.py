"""BlendOptions: the blend step's options in one object, its defaults the schema's, built from the rule params."""

import dataclasses
import re
from types import SimpleNamespace

import pytest

from audiofold.config import load_schema
from audiofold.ensemble.options import METHODS, BlendOptions
from audiofold.errors import ConfigError
from audiofold.postprocess import ROUND_MODES

from conftest import ROOT


def _schema_entry(key: str) -> dict:
    node = load_schema()
    for part in key.split("."):
        node = node["properties"][part]
    return node


def test_every_field_comes_from_a_schema_key_and_defaults_to_its_default():
    keys = BlendOptions.config_keys()
    assert set(keys) == {field.name for field in dataclasses.fields(BlendOptions)}
    assert len(set(keys.values())) == len(keys), "two fields read one config key"
    defaults = BlendOptions()
    for name, key in keys.items():
        try:
            entry = _schema_entry(key)
        except KeyError:
            pytest.fail(f"BlendOptions.{name}: config key {key} is not in the schema")
        assert "default" in entry, key
        default = getattr(defaults, name)
        assert default == entry["default"], (name, key)
        # the same type (True is no 1), a number field's default may be written as a float
        assert type(default) is type(entry["default"]) or entry.get("type") == "number", (name, key)


def test_the_allowed_values_are_the_schemas():
    assert _schema_entry("blend.method")["enum"] == ["auto", *METHODS]
    assert _schema_entry("submission.round")["enum"] == list(ROUND_MODES)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"method": "magic"}, "blend.method"),
        ({"max_candidates": 0}, "blend.max_candidates"),
        ({"greedy_rounds": 0}, "blend.greedy_rounds"),
        ({"per_class": "sometimes"}, "blend.per_class"),
        ({"per_class": 1}, "blend.per_class"),  # 1 == True, but not a boolean
        ({"per_class_threshold": "maybe"}, "submission.per_class_threshold"),
        ({"round_mode": "up"}, "submission.round"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_its_key(change, key):
    with pytest.raises(ConfigError, match=f"^{re.escape(key)}: .*{re.escape(repr(next(iter(change.values()))))}"):
        BlendOptions(**change)


def test_from_params_reads_one_param_per_key_named_by_its_last_part():
    values = {
        "method": "greedy",
        "step": 0.25,
        "max_candidates": 3,
        "greedy_rounds": 7,
        "per_class": True,
        "per_class_min_positives": 4,
        "per_class_shrinkage": 0.0,
        "per_class_threshold": False,
        "threshold_min_positives": 2,
        "round": "never",
    }
    expected = BlendOptions(**{k: v for k, v in values.items() if k != "round"}, round_mode="never")
    # snakemake.params: attributes, and other params of the rule beside them
    assert BlendOptions.from_params(SimpleNamespace(**values, candidates=["a/b"], seed=0)) == expected
    assert BlendOptions.from_params({**values, "calibrate": True}) == expected
    with pytest.raises(ConfigError, match="^submission.round: "):
        BlendOptions.from_params({**values, "round": "sometimes"})
    with pytest.raises(AttributeError, match="round"):
        BlendOptions.from_params(SimpleNamespace(**{k: v for k, v in values.items() if k != "round"}))


def test_both_blend_rules_pass_every_option_as_the_param_from_params_reads():
    text = (ROOT / "workflow/rules/ensemble.smk").read_text()
    for key in BlendOptions.config_keys().values():
        section, name = key.split(".")
        assert f'    {name}=config["{section}"]["{name}"],\n' in text, key
    rules = re.split(r"^rule ", text, flags=re.M)
    params = {rule.split(":")[0]: rule.split("params:")[1].split("log:")[0] for rule in rules[1:] if "params:" in rule}
    assert "**BLEND_PARAMS," in params["blend"] and "**BLEND_PARAMS," in params["blend_nested"]
