# The blend's test predictions in the sample submission's exact layout.
rule submit:
    input:
        test=rules.blend.output.test,
        oof=rules.blend.output.oof,
        weights=rules.blend.output.weights,
        task=rules.prepare.output.task,
        sample_submission=optional(DATA["sample_submission"]),
    output:
        submission=f"{R}/submission.csv",
    params:
        threshold=config["submission"]["threshold"],
    log:
        f"{R}/logs/submit.log",
    benchmark:
        f"{R}/benchmarks/submit.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/rule-slim.yaml"
    script:
        "../../scripts/submit.py"
