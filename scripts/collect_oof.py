"""Rule collect_oof -> audiofold.collect_oof.collect (one backbone x head)."""

from audiofold.collect_oof import collect
from audiofold.rulekit import run_rule
from audiofold.tasks import load_task


def main(smk):
    collect(
        smk.input.preds,
        smk.input.targets,
        load_task(smk.input.task),
        smk.output.oof,
        smk.output.test,
        smk.output.scores,
        refit_path=smk.input.refit[0] if smk.input.refit else None,
        test_predictions=smk.params.test_predictions,
    )


run_rule(snakemake, main)  # noqa: F821
