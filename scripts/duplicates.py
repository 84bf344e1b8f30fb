"""Rule duplicates -> audiofold.duplicates.duplicate_report (identical and near-duplicate clips across
folds and between train and test)."""

from audiofold.duplicates import duplicate_report
from audiofold.rulekit import run_rule


def main(smk):
    duplicate_report(
        smk.input.train,
        smk.input.test,
        clips_path=smk.input.clips,
        folds_path=smk.input.folds,
        task_path=smk.input.task,
        backbone=smk.params.backbone,
        threshold=smk.params.threshold,
        pairs_out=smk.output.pairs,
        summary_out=smk.output.summary,
    )


run_rule(snakemake, main)  # noqa: F821
