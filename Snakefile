# audiofold: decode -> embed (per fold shard) -> train heads per fold -> OOF -> calibrate -> blend -> submit.
# Parameters live in config.yaml, validated against workflow/schemas/config.schema.yaml.
import sys
from pathlib import Path

from snakemake.utils import min_version

# The rule scripts import audiofold from this source tree, also in the `--sdm conda` environments
# (envs/rule-*.yaml, which do not install it): Snakemake hands the main process's sys.path to every
# script job (appended after the job environment's own packages).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from audiofold.config import check_output_folders, load_schema, validate_config
from audiofold.run_summary import on_error, on_success

min_version("9.0")


configfile: "config.yaml"


# Errors name the file that holds the bad key: --config, then a --configfile over config.yaml, the last
# one first. A cluster job parses this file again: it skips the option check (class imports, seconds
# per job) and the results folder check (the main process made the folder).
CONFIG_SOURCES = dict(
    sources=[*reversed(workflow.overwrite_configfiles), "config.yaml"],
    command_line=dict(workflow.config_settings.config),
)
validate_config(
    config,
    load_schema(Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"),
    check_options=workflow.is_main_process,
    **CONFIG_SOURCES,
)
# Before Snakemake looks at any output: the results folder must be audiofold's own (not `..`, `/`,
# a file, a read-only or a stranger's folder); it is then made and marked as audiofold's.
if workflow.is_main_process:
    check_output_folders(config, [Path.cwd(), workflow.basedir], mark=True, **CONFIG_SOURCES)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/diagnostics.smk"
include: "workflow/rules/ensemble.smk"
include: "workflow/rules/submit.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_outputs(),
    default_target: True


# A run ends by saying what it made (submission, scores, warnings from metrics.json; only where this
# run's jobs include metrics.json) and the report command, or which rules failed and their logs.
onsuccess:
    on_success(
        R,
        outputs=[path for job in workflow.dag.jobs for path in job.output],
        configfiles=workflow.overwrite_configfiles,
        overrides=workflow.config_settings.config,
    )


onerror:
    on_error(log)
