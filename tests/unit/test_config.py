import copy

import pytest
import yaml

from audiofold.config import load_config, load_schema, validate_config
from audiofold.errors import ConfigError

from conftest import ROOT


@pytest.fixture(scope="module")
def schema():
    return load_schema(ROOT / "workflow/schemas/config.schema.yaml")


@pytest.fixture
def base():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_default_config_is_valid_and_defaults_are_filled(base, schema):
    config = validate_config(copy.deepcopy(base), schema)
    assert config["cv"]["n_bins"] == 10
    assert config["backbones"]["logmel"]["tta"] == {
        "n_crops": 1,
        "pad": "zeros",
        "aggregate": "mean",
        "keep_crops": False,
        "seed": 0,
    }
    assert config["submission"]["threshold"] == "auto"
    without_blend = validate_config({k: v for k, v in copy.deepcopy(base).items() if k != "blend"}, schema)
    assert without_blend["blend"] == {
        "step": 0.1,
        "max_candidates": 6,
        "method": "auto",
        "greedy_rounds": 25,
        "per_class": "auto",
        "per_class_min_positives": 10,
        "per_class_shrinkage": 10,
    }


@pytest.mark.parametrize(
    "mutate, named",
    [
        (lambda c: c["cv"].update(n_fold=3), "cv"),
        (lambda c: c["cv"].update(n_folds=1), "cv.n_folds"),
        (lambda c: c["task"].update(kind="ranking"), "task.kind"),
        (lambda c: c["backbones"]["logmel"].update(tta={"n_crops": 0}), "backbones.logmel.tta.n_crops"),
        (lambda c: c.pop("heads"), "heads"),
        (lambda c: c["data"].pop("train_csv"), "train_csv"),
        (lambda c: c["task"].update(scale={"min": 5, "max": 0, "step": 0.5}), "task.scale"),
        (lambda c: c["task"].update(scale={"min": 0, "max": 5, "step": 0}), "task.scale.step"),
        (lambda c: c["task"].update(scale={"min": 0, "step": 0.5}), "task.scale"),
        (lambda c: c["heads"]["knn"].update(backbones=["wavlm"]), "heads.knn.backbones: 'wavlm' is not a backbone"),
        (lambda c: c["heads"]["knn"].update(backbones=[]), "heads.knn.backbones"),
        (lambda c: c["blend"].update(method="magic"), "blend.method"),
        (lambda c: c["blend"].update(greedy_rounds=0), "blend.greedy_rounds"),
        (lambda c: c.update(duplicates={"backbone": "wavlm"}), "duplicates.backbone: 'wavlm' is not a backbone"),
        (lambda c: c.update(duplicates={"threshold": 1.5}), "duplicates.threshold"),
        (lambda c: c.update(resources={"gpu_backbones": ["wavlm"]}), "resources.gpu_backbones: 'wavlm' is not under"),
        (lambda c: c.update(resources={"gpu_heads": ["mlp"]}), "resources.gpu_heads: 'mlp' is not under `heads`"),
        (lambda c: c.update(resources={"gpu_finetune": ["cnn"]}), "resources.gpu_finetune: 'cnn' is not under"),
        (
            lambda c: c.update(finetune={"cnn": {"encoder": {"type": "cnn"}}}, resources={"gpu_finetune": ["cn"]}),
            r"resources.gpu_finetune: 'cn' is not under `finetune` in this config; list names from: cnn",
        ),
    ],
)
def test_bad_values_name_their_key(base, schema, mutate, named):
    mutate(base)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        validate_config(base, schema)


def test_gpu_lists_take_the_configs_names(base, schema):
    base["finetune"] = {"cnn": {"encoder": {"type": "cnn"}}}
    base["resources"] = {"gpu_backbones": ["logmel"], "gpu_heads": ["knn"], "gpu_finetune": ["cnn"]}
    assert validate_config(base, schema)["resources"]["gpu_finetune"] == ["cnn"]


def test_unknown_key_lists_allowed_keys(base, schema):
    base["cv"]["n_fold"] = 3
    with pytest.raises(
        ConfigError,
        match="Allowed keys here: auto_groups, auto_groups_backbone, auto_groups_threshold, group_duplicates, n_bins, n_folds",
    ):
        validate_config(base, schema)


def test_load_config_reports_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "config.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, schema_path=ROOT / "workflow/schemas/config.schema.yaml")


def test_option_names_are_checked_unless_a_cluster_job_skips_it(base, schema):
    config = {**copy.deepcopy(base), "heads": {"knn": {"type": "knn", "kk": 3}}}
    with pytest.raises(ConfigError, match=r"heads.knn.kk: unknown option"):
        validate_config(copy.deepcopy(config), schema)
    # the Snakefile passes check_options=False in a job's re-parse: the main process has checked already
    assert validate_config(copy.deepcopy(config), schema, check_options=False)["heads"]["knn"]["kk"] == 3
