# audiofold: decode -> embed (per fold shard) -> train heads per fold -> OOF -> calibrate -> blend -> submit.
# Parameters live in config.yaml, validated against workflow/schemas/config.schema.yaml.
from pathlib import Path

from audiofold.config import load_schema, validate_config


configfile: "config.yaml"


# Errors name the file that holds the bad key: a --configfile wins over config.yaml, the last one first.
validate_config(config, load_schema(Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"),
                sources=[*reversed(workflow.overwrite_configfiles), "config.yaml"])


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/ensemble.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
