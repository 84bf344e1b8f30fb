"""Rule blend_nested -> audiofold.ensemble.blend_nested.nested_files (honest score of calibrate -> blend -> round)."""

from audiofold.ensemble.blend_nested import nested_files
from audiofold.rulekit import run_rule
from audiofold.tasks import load_task


def main(smk):
    nested_files(
        dict(zip(smk.params.candidates, smk.input.oof)),
        load_task(smk.input.task),
        smk.output.oof,
        smk.output.summary,
        calibrate=smk.params.calibrate,
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
        targets_path=smk.input.targets,
        seed=smk.params.seed,
    )


run_rule(snakemake, main)  # noqa: F821
