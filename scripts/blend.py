"""Rule blend -> audiofold.ensemble.blend.blend_files (grid, greedy or stacker chosen on OOF; rounding decided on it)."""

from audiofold.ensemble.blend import blend_files
from audiofold.rulekit import run_rule
from audiofold.tasks import load_task


def main(smk):
    blend_files(
        dict(zip(smk.params.candidates, smk.input.oof)),
        dict(zip(smk.params.candidates, smk.input.test)),
        load_task(smk.input.task),
        smk.output.oof,
        smk.output.test,
        smk.output.weights,
        step=smk.params.step,
        max_candidates=smk.params.max_candidates,
        round_mode=smk.params.round,
        method=smk.params.method,
        greedy_rounds=smk.params.greedy_rounds,
        per_class=smk.params.per_class,
        per_class_min_positives=smk.params.per_class_min_positives,
        per_class_shrinkage=smk.params.per_class_shrinkage,
        per_class_threshold=smk.params.per_class_threshold,
        threshold_min_positives=smk.params.threshold_min_positives,
    )


run_rule(snakemake, main)  # noqa: F821
