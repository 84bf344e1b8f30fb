# The scores table, metrics.json and the report's plots: every candidate's OOF score, the blend's in-sample
# and nested scores, the shift-weighted estimate and the duplicate warnings.
rule report:
    input:
        scores=[f"{R}/oof/{b}/{h}/scores.json" for b, h in CANDIDATES],
        decisions=[f"{R}/calibrated/{b}/{h}/decision.json" for b, h in CANDIDATES],
        candidates=[f"{R}/calibrated/{b}/{h}/oof.npz" for b, h in CANDIDATES],
        blend_oof=rules.blend.output.oof,
        weights=rules.blend.output.weights,
        nested=rules.blend_nested.output.summary,
        nested_oof=rules.blend_nested.output.oof,  # scored again with the shift weights
        task=rules.prepare.output.task,
        shift=rules.shift.output.shift,
        shift_weights=rules.shift.output.weights,
        duplicates=rules.duplicates.output.summary,
    output:
        metrics=f"{R}/metrics.json",
        summary=report(f"{R}/plots/scores.png", category="1. Scores", caption="../report/scores.rst"),
        truth=report(f"{R}/plots/oof_vs_truth.png", category="2. OOF predictions", caption="../report/oof_vs_truth.rst"),
        weights=report(f"{R}/plots/blend_weights.png", category="3. Blend", caption="../report/blend_weights.rst"),
        calibration=report(f"{R}/plots/calibration.png", category="4. Calibration", caption="../report/calibration.rst"),
        table=report(f"{R}/plots/scores_table.html", category="1. Scores", caption="../report/scores_table.rst"),
        # the same data as tables, declared as `dvc plots` in dvc.yaml
        truth_data=f"{R}/plots/oof_vs_truth.csv",
        per_class_data=f"{R}/plots/per_class.csv",
    params:
        candidates=[f"{b}/{h}" for b, h in CANDIDATES],
    log:
        f"{R}/logs/report.log",
    benchmark:
        f"{R}/benchmarks/report.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/rule-slim.yaml"
    script:
        "../../scripts/report.py"
