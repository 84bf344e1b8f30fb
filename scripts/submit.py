"""Rule submit -> audiofold.submit.write_submission (fold-averaged, blended, rounded where the blend decided)."""

from audiofold.rulekit import optional_input, run_rule
from audiofold.submit import write_submission
from audiofold.tasks import load_task


def main(smk):
    write_submission(
        smk.input.test,
        load_task(smk.input.task),
        optional_input(smk, "sample_submission"),
        smk.output[0],
        threshold=smk.params.threshold,
        oof_blend_path=smk.input.oof,
        blend_decisions_path=smk.input.weights,
    )


run_rule(snakemake, main)  # noqa: F821
