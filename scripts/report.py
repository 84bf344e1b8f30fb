"""Rule report -> audiofold.report.summarise (metrics.json and the report plots; folds from task.json)."""

from audiofold.io import read_json
from audiofold.report import folds_entry, summarise
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
        nested_oof_path=smk.input.nested_oof,
        shift_weights_path=smk.input.shift_weights,
        fold_info=folds_entry(read_json(smk.input.task)),
    )


run_rule(snakemake, main)  # noqa: F821
