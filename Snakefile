# audiofold: decode -> embed (per fold shard) -> train heads per fold -> OOF -> calibrate -> blend -> submit.
# Parameters live in config.yaml, validated against workflow/schemas/config.schema.yaml.
from pathlib import Path

from audiofold.config import load_schema, validate_config


configfile: "config.yaml"


validate_config(config, load_schema(Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"))


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
