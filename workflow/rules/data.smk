if config["demo"]["enabled"]:

    rule demo_data:
        output:
            train=DATA["train_csv"],
            test=DATA["test_csv"],
            sample=DATA["sample_submission"],
            train_audio=directory(DATA["train_audio_dir"]),
            test_audio=directory(DATA["test_audio_dir"]),
        params:
            kind=config["demo"]["kind"],
            n_train=config["demo"]["n_train"],
            n_test=config["demo"]["n_test"],
            seed=config["demo"]["seed"],
        log:
            f"{R}/logs/demo_data.log",
        benchmark:
            f"{R}/benchmarks/demo_data.tsv"
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            "../envs/audiofold-slim.yaml"
        script:
            "../../scripts/demo_data.py"


# The clip list and its audio checks: everything embedding depends on, and nothing about labels or
# folds, so cv.*, seed, groups and labels never rerun it. A checkpoint: its clips.csv gives the chunks.
checkpoint validate:
    input:
        train_csv=DATA["train_csv"],
        test_csv=optional(DATA["test_csv"]),
        sample_submission=optional(DATA["sample_submission"]),
        audio=audio_inputs,  # an added, removed or edited clip reruns the clip list and what follows
    output:
        # the clip table first: a param that reads the checkpoint (prepare's) names its first output
        clips=f"{R}/validation/clips.csv",
        report=f"{R}/validation/report.json",
    params:
        # functions, not strings: `--lint` takes a folder that prefixes a table's path (results/demo/train,
        # results/demo/train.csv) for a hard-coded file prefix
        train_audio_dir=lambda wc: DATA["train_audio_dir"],
        test_audio_dir=lambda wc: DATA["test_audio_dir"],
        id_column=DATA["id_column"],
        path_column=DATA["path_column"],
        audio_extensions=DATA["audio_extensions"],
        bad_audio=config["audio"]["bad_audio"],
        max_seconds=config["audio"]["max_seconds"],
        shard_clips=config["audio"]["shard_clips"],
        audio_fingerprint=audio_fingerprint,
    log:
        f"{R}/logs/validate.log",
    benchmark:
        f"{R}/benchmarks/validate.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/audiofold-slim.yaml"
    script:
        "../../scripts/validate.py"


# Task, folds and targets: read by train and later steps only. The clip table is an input only under
# audio.bad_audio: skip (its skipped training rows leave the targets); otherwise no row is ever dropped,
# so audio.* (validate's params) never reruns prepare. Under cv.group_duplicates the sets of identical
# training clips (the clip table's content hashes) are a param: prepare reruns exactly when they change.
# Its clip table input is then ancient(): a param that reads a checkpoint needs the checkpoint's file as
# an input, but a rewritten clip table with the same sets must not rerun prepare.
rule prepare:
    input:
        train_csv=DATA["train_csv"],
        test_csv=optional(DATA["test_csv"]),
        sample_submission=optional(DATA["sample_submission"]),
        clips=prepare_clip_table(),
    output:
        task=f"{R}/task.json",
        folds=f"{R}/folds.csv",
        targets=f"{R}/targets.npz",
    params:
        id_column=DATA["id_column"],
        label_columns=DATA["label_columns"],
        group_column=DATA["group_column"],
        fold_column=DATA["fold_column"],
        path_column=DATA["path_column"],
        kind=config["task"]["kind"],
        label_sep=config["task"]["label_sep"],
        classes=config["task"]["classes"],
        scale=config["task"]["scale"],
        n_folds=config["cv"]["n_folds"],
        n_bins=config["cv"]["n_bins"],
        group_duplicates=config["cv"]["group_duplicates"],
        identical_clips=identical_training_clips,
        seed=config["seed"],
    log:
        f"{R}/logs/prepare.log",
    benchmark:
        f"{R}/benchmarks/prepare.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/audiofold-slim.yaml"
    script:
        "../../scripts/prepare.py"
