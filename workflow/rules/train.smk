# No fixed `group:`: a group job asks SLURM for the sum of its members' cores and memory, which a small
# node cannot grant. Bundle on the command line instead (docs/SCALING.md, "Fewer, bigger jobs").
rule train:
    input:
        train=lambda wc: embeddings(wc.backbone, "train"),
        test=lambda wc: embeddings(wc.backbone, "test"),
        targets=rules.prepare.output.targets,
        task=rules.prepare.output.task,
    wildcard_constraints:  # fine-tuned candidates' predictions come from finetune.smk
        backbone="|".join(BACKBONES),
        head="|".join(HEADS),
    output:
        model=f"{R}/models/{{backbone}}/{{head}}/fold{{fold}}.joblib",
        preds=f"{R}/preds/{{backbone}}/{{head}}/fold{{fold}}.npz",
    params:
        head=lambda wc: head_params(wc.head),
        seed=config["seed"],
        test_predictions=config["cv"]["test_predictions"],  # auto: also nested predictions
        pseudo_labels=pseudo_label_params,
    log:
        f"{R}/logs/train/{{backbone}}/{{head}}/fold{{fold}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{backbone}}/{{head}}/fold{{fold}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=lambda wc: gpus("heads", wc.head),
    conda:
        "../../envs/rule-models.yaml"
    script:
        "../../scripts/train.py"


# cv.test_predictions refit/auto: the head once more on every training row, for the test predictions
rule refit:
    input:
        train=lambda wc: embeddings(wc.backbone, "train"),
        test=lambda wc: embeddings(wc.backbone, "test"),
        targets=rules.prepare.output.targets,
        task=rules.prepare.output.task,
    wildcard_constraints:  # fine-tuned candidates' predictions come from finetune.smk
        backbone="|".join(BACKBONES),
        head="|".join(HEADS),
    output:
        model=f"{R}/models/{{backbone}}/{{head}}/refit.joblib",
        preds=f"{R}/preds/{{backbone}}/{{head}}/refit.npz",
    params:
        head=lambda wc: head_params(wc.head),
        seed=config["seed"],
        test_predictions="refit",
        pseudo_labels=pseudo_label_params,
    log:
        f"{R}/logs/train/{{backbone}}/{{head}}/refit.log",
    benchmark:
        f"{R}/benchmarks/train/{{backbone}}/{{head}}/refit.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=lambda wc: gpus("heads", wc.head),
    conda:
        "../../envs/rule-models.yaml"
    script:
        "../../scripts/train.py"


rule collect_oof:
    input:
        preds=expand(rules.train.output.preds, fold=FOLDS, allow_missing=True),
        refit=lambda wc: (
            [] if config["cv"]["test_predictions"] == "folds" else [f"{R}/preds/{wc.backbone}/{wc.head}/refit.npz"]
        ),
        targets=rules.prepare.output.targets,
        task=rules.prepare.output.task,
    output:
        oof=f"{R}/oof/{{backbone}}/{{head}}/oof.npz",
        test=f"{R}/oof/{{backbone}}/{{head}}/test.npz",
        scores=f"{R}/oof/{{backbone}}/{{head}}/scores.json",
    params:
        test_predictions=config["cv"]["test_predictions"],
    log:
        f"{R}/logs/collect_oof/{{backbone}}/{{head}}.log",
    benchmark:
        f"{R}/benchmarks/collect_oof/{{backbone}}/{{head}}.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/rule-slim.yaml"
    script:
        "../../scripts/collect_oof.py"
