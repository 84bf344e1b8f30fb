"""Rule shift -> audiofold.shift.shift_report (adversarial validation on the first backbone, importance weights)."""

from audiofold.rulekit import run_rule
from audiofold.shift import shift_report


def main(smk):
    shift_report(
        smk.input.train, smk.input.test, smk.params.backbone, smk.params.seed, smk.output.shift, smk.output.weights
    )


run_rule(snakemake, main)  # noqa: F821
