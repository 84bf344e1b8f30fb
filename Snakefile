# audiofold: decode -> embed (per fold shard) -> train heads per fold -> OOF -> calibrate -> blend -> submit.
# Parameters live in config.yaml, validated against workflow/schemas/config.schema.yaml.
import sys
from pathlib import Path

from snakemake.utils import min_version

# The rule scripts import audiofold from this source tree, also in the `--sdm conda` environments
# (workflow/envs/, which do not install it): Snakemake hands the main process's sys.path to every
# script job (appended after the job environment's own packages).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from audiofold.config import load_schema, validate_config

min_version("9.0")


configfile: "config.yaml"


# Errors name the file that holds the bad key: a --configfile wins over config.yaml, the last one first.
# A cluster job parses this file again: it skips the option check (class imports, seconds per job).
validate_config(
    config,
    load_schema(Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"),
    sources=[*reversed(workflow.overwrite_configfiles), "config.yaml"],
    check_options=workflow.is_main_process,
)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/ensemble.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
