# Diagnostics on the embeddings, reported in metrics.json and the report: train/test shift and duplicate clips.


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
        "../../envs/rule-slim.yaml"
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
        "../../envs/rule-slim.yaml"
    script:
        "../../scripts/duplicates.py"
