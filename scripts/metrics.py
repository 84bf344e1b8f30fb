"""Rule metrics -> audiofold.report.summarise (metrics.json and the report plots)."""

from audiofold.report import summarise
from audiofold.rulekit import run_rule
from audiofold.tasks import load_task


def main(smk):
    summarise(
        candidates=smk.params.candidates,
        score_paths=smk.input.scores,
        decision_paths=smk.input.decisions,
        candidate_oof_paths=smk.input.candidates,
        blend_oof_path=smk.input.blend_oof,
        weights_path=smk.input.weights,
        nested_path=smk.input.nested,
        task=load_task(smk.input.task),
        metrics_out=smk.output.metrics,
        plots={k: smk.output[k] for k in ("summary", "truth", "weights", "calibration", "table")},
        plot_data={"truth": smk.output.truth_data, "per_class": smk.output.per_class_data},
        shift_path=smk.input.shift,
        duplicates_path=smk.input.duplicates,
    )


run_rule(snakemake, main)  # noqa: F821
