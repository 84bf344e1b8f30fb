"""Rule calibrate -> audiofold.ensemble.calibrate.calibrate_files (one backbone x head)."""

from audiofold.ensemble.calibrate import calibrate_files
from audiofold.rulekit import run_rule
from audiofold.tasks import load_task


def main(smk):
    calibrate_files(
        smk.input.oof,
        smk.input.test,
        load_task(smk.input.task),
        smk.output.oof,
        smk.output.test,
        smk.output.decision,
        enabled=smk.params.enabled,
    )


run_rule(snakemake, main)  # noqa: F821
