rule calibrate:
    input:
        oof=rules.collect_oof.output.oof,
        test=rules.collect_oof.output.test,
        task=rules.prepare.output.task,
    output:
        oof=f"{R}/calibrated/{{backbone}}/{{head}}/oof.npz",
        test=f"{R}/calibrated/{{backbone}}/{{head}}/test.npz",
        decision=f"{R}/calibrated/{{backbone}}/{{head}}/decision.json",
    params:
        enabled=config["calibrate"]["enabled"],
    log:
        f"{R}/logs/calibrate/{{backbone}}/{{head}}.log",
    benchmark:
        f"{R}/benchmarks/calibrate/{{backbone}}/{{head}}.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/rule-slim.yaml"
    script:
        "../../scripts/calibrate.py"


# The blend options (audiofold.ensemble.options.BlendOptions.from_params), read by blend and blend_nested
# alike: one param per config key, named by the key's last part.
BLEND_PARAMS = dict(
    step=config["blend"]["step"],
    max_candidates=config["blend"]["max_candidates"],
    method=config["blend"]["method"],
    greedy_rounds=config["blend"]["greedy_rounds"],
    per_class=config["blend"]["per_class"],
    per_class_min_positives=config["blend"]["per_class_min_positives"],
    per_class_shrinkage=config["blend"]["per_class_shrinkage"],
    per_class_threshold=config["submission"]["per_class_threshold"],
    threshold_min_positives=config["submission"]["threshold_min_positives"],
    round=config["submission"]["round"],
)


rule blend:
    input:
        oof=[f"{R}/calibrated/{b}/{h}/oof.npz" for b, h in CANDIDATES],
        test=[f"{R}/calibrated/{b}/{h}/test.npz" for b, h in CANDIDATES],
        task=rules.prepare.output.task,
    output:
        oof=f"{R}/blend/oof.npz",
        test=f"{R}/blend/test.npz",
        weights=f"{R}/blend/weights.json",
    params:
        **BLEND_PARAMS,
        candidates=[f"{b}/{h}" for b, h in CANDIDATES],
    log:
        f"{R}/logs/blend.log",
    benchmark:
        f"{R}/benchmarks/blend.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/rule-slim.yaml"
    script:
        "../../scripts/blend.py"


# Honest score: calibration, blend method, pruning, weights and rounding re-chosen per outer fold on the other folds.
rule blend_nested:
    input:
        oof=[f"{R}/oof/{b}/{h}/oof.npz" for b, h in CANDIDATES],
        task=rules.prepare.output.task,
        targets=rules.prepare.output.targets,  # fold groups, for the blend vs best single bootstrap
    output:
        oof=f"{R}/blend/nested_oof.npz",
        summary=f"{R}/blend/nested.json",
    params:
        **BLEND_PARAMS,
        calibrate=config["calibrate"]["enabled"],
        seed=config["seed"],
        candidates=[f"{b}/{h}" for b, h in CANDIDATES],
    log:
        f"{R}/logs/blend_nested.log",
    benchmark:
        f"{R}/benchmarks/blend_nested.tsv"
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/rule-slim.yaml"
    script:
        "../../scripts/blend_nested.py"
