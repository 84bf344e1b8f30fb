# No fixed `group:`: a group job asks SLURM for the sum of its members' cores and memory, which a small
# node cannot grant. Bundle on the command line instead (README, "Fewer, bigger jobs").
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
        "../envs/audiofold.yaml"
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
        "../envs/audiofold.yaml"
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
        "../envs/audiofold-slim.yaml"
    script:
        "../../scripts/collect_oof.py"


# Adversarial validation on the first backbone's embeddings: does the test set look like training? Where it
# does not, its out-of-fold odds weight the OOF rows for the shift-weighted estimate (metrics).
rule shift:
    input:
        train=lambda wc: embeddings(BACKBONES[0], "train"),
        test=lambda wc: embeddings(BACKBONES[0], "test"),
    output:
        shift=f"{R}/shift.json",
        weights=f"{R}/shift_weights.npz",  # per training clip: the shift-weighted estimate's weights
    params:
        backbone=BACKBONES[0],
        seed=config["seed"],
    log:
        f"{R}/logs/shift.log",
    benchmark:
        f"{R}/benchmarks/shift.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/audiofold-slim.yaml"
    script:
        "../../scripts/shift.py"


# Identical and near-duplicate clips across folds and between train and test, by cosine similarity of
# one backbone's standardised pooled embeddings: reported and warned about, never used to move folds
# (folds are made before embeddings, so a fold change never re-embeds).
rule duplicates:
    input:
        train=lambda wc: embeddings(DUPLICATES_BACKBONE, "train"),
        test=lambda wc: embeddings(DUPLICATES_BACKBONE, "test"),
        clips=rules.validate.output.clips,
        folds=rules.prepare.output.folds,
        task=rules.prepare.output.task,
    output:
        pairs=f"{R}/validation/duplicates.csv",
        summary=f"{R}/validation/duplicates.json",
    params:
        backbone=DUPLICATES_BACKBONE,
        threshold=config["duplicates"]["threshold"],
    log:
        f"{R}/logs/duplicates.log",
    benchmark:
        f"{R}/benchmarks/duplicates.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/audiofold-slim.yaml"
    script:
        "../../scripts/duplicates.py"
