# Fine-tuned encoders (config `finetune:`, audiofold.finetune): one job per model x fold, plus the refit
# under cv.test_predictions refit/auto. Their candidates (ft-<model>/finetune) write the train step's
# prediction files, so collect_oof, calibrate and the blends take them unchanged. Audio is decoded once
# per chunk and sample rate (audio_store), shared by every model and fold at that rate: no fold, seed or
# fine-tune key reruns it.
rule audio_store:
    input:
        manifest=chunk_manifest,
    output:
        waves=f"{R}/audio/{{sr}}/{{shard}}.f32",
        index=f"{R}/audio/{{sr}}/{{shard}}.npz",
    params:
        max_seconds=config["audio"]["max_seconds"],
    wildcard_constraints:
        sr=r"\d+",
    log:
        f"{R}/logs/audio_store/{{sr}}/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/audio_store/{{sr}}/{{shard}}.tsv"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/rule-models.yaml"
    script:
        "../../scripts/audio_store.py"


rule finetune:
    input:
        train=lambda wc: ft_store(wc.ftmodel, "train", "npz"),
        train_waves=lambda wc: ft_store(wc.ftmodel, "train", "f32"),
        test=lambda wc: ft_store(wc.ftmodel, "test", "npz"),
        test_waves=lambda wc: ft_store(wc.ftmodel, "test", "f32"),
        targets=rules.prepare.output.targets,
        task=rules.prepare.output.task,
    output:
        model=f"{R}/models/ft-{{ftmodel}}/finetune/fold{{fold}}.pt",
        preds=f"{R}/preds/ft-{{ftmodel}}/finetune/fold{{fold}}.npz",
        history=f"{R}/finetune/{{ftmodel}}/fold{{fold}}.csv",
    params:
        model=lambda wc: config["finetune"][wc.ftmodel],
        seed=config["seed"],
        pseudo_labels=pseudo_label_params,  # the teacher-student round (variant main+pl) when enabled
        # resumable state, outside the outputs (Snakemake deletes those of a failed job)
        checkpoint_dir=lambda wc: f"{R}/checkpoints/ft-{wc.ftmodel}/fold{wc.fold}",
    wildcard_constraints:
        ftmodel="|".join(FINETUNE) or "(?!)",
    log:
        f"{R}/logs/finetune/{{ftmodel}}/fold{{fold}}.log",
    benchmark:
        f"{R}/benchmarks/finetune/{{ftmodel}}/fold{{fold}}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=lambda wc: gpus("finetune", wc.ftmodel),
    conda:
        "../../envs/rule-models.yaml"
    script:
        "../../scripts/finetune.py"


# cv.test_predictions refit/auto: the model once more on every training row, for the folds' median best epoch
rule finetune_refit:
    input:
        train=lambda wc: ft_store(wc.ftmodel, "train", "npz"),
        train_waves=lambda wc: ft_store(wc.ftmodel, "train", "f32"),
        test=lambda wc: ft_store(wc.ftmodel, "test", "npz"),
        test_waves=lambda wc: ft_store(wc.ftmodel, "test", "f32"),
        targets=rules.prepare.output.targets,
        task=rules.prepare.output.task,
        folds=expand(rules.finetune.output.preds, fold=FOLDS, allow_missing=True),  # their best epochs
    output:
        model=f"{R}/models/ft-{{ftmodel}}/finetune/refit.pt",
        preds=f"{R}/preds/ft-{{ftmodel}}/finetune/refit.npz",
        history=f"{R}/finetune/{{ftmodel}}/refit.csv",
    params:
        model=lambda wc: config["finetune"][wc.ftmodel],
        seed=config["seed"],
        pseudo_labels=pseudo_label_params,
        checkpoint_dir=lambda wc: f"{R}/checkpoints/ft-{wc.ftmodel}/refit",
    wildcard_constraints:
        ftmodel="|".join(FINETUNE) or "(?!)",
    log:
        f"{R}/logs/finetune/{{ftmodel}}/refit.log",
    benchmark:
        f"{R}/benchmarks/finetune/{{ftmodel}}/refit.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=lambda wc: gpus("finetune", wc.ftmodel),
    conda:
        "../../envs/rule-models.yaml"
    script:
        "../../scripts/finetune.py"


# Learning curves of every fine-tuned model, in the Snakemake report.
rule finetune_curves:
    input:
        histories=lambda wc: [f"{R}/finetune/{m}/fold{k}.csv" for m in FINETUNE for k in FOLDS],
    output:
        curves=report(
            f"{R}/plots/finetune_curves.png",
            category="5. Fine-tuning",
            caption="../report/finetune_curves.rst",
        ),
    log:
        f"{R}/logs/finetune_curves.log",
    benchmark:
        f"{R}/benchmarks/finetune_curves.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/rule-slim.yaml"
    script:
        "../../scripts/finetune_curves.py"
