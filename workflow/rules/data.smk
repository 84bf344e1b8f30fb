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
            "../../envs/rule-slim.yaml"
        script:
            "../../scripts/demo_data.py"


# Content hash (blake2b of the bytes) of every clip's file: identical clips are duplicates. Its own step,
# not validate's, so that audio.* (validate's params) never reruns prepare, which reads it under
# cv.group_duplicates. Hashes are remembered in the embedding cache; the embed jobs get them through
# their chunk's manifest.
rule hashes:
    input:
        train_csv=DATA["train_csv"],
        test_csv=optional(DATA["test_csv"]),
        sample_submission=optional(DATA["sample_submission"]),
        audio=audio_inputs,
    output:
        hashes=f"{R}/validation/hashes.csv",
    params:
        train_audio_dir=lambda wc: DATA["train_audio_dir"],
        test_audio_dir=lambda wc: DATA["test_audio_dir"],
        id_column=DATA["id_column"],
        path_column=DATA["path_column"],
        audio_extensions=DATA["audio_extensions"],
        audio_fingerprint=audio_fingerprint,
    log:
        f"{R}/logs/hashes.log",
    benchmark:
        f"{R}/benchmarks/hashes.tsv"
    resources:
        mem_mb=1000,
        runtime=30,
    conda:
        "../../envs/rule-slim.yaml"
    script:
        "../../scripts/hashes.py"


# The clip list and its audio checks: everything embedding depends on, and nothing about labels or
# folds, so cv.*, seed, groups and labels never rerun it. A checkpoint: its clips.csv gives the chunks.
# It also writes validation/chunks/{chunk}.tsv, each chunk's manifest (the embed jobs' input), only
# when changed and not as declared outputs, which Snakemake would delete first (common.smk chunk_manifest).
checkpoint validate:
    input:
        train_csv=DATA["train_csv"],
        test_csv=optional(DATA["test_csv"]),
        sample_submission=optional(DATA["sample_submission"]),
        audio=audio_inputs,  # an added, removed or edited clip reruns the clip list and what follows
        hashes=rules.hashes.output.hashes,  # copied into clips.csv
    output:
        # first: what a rule waiting on the checkpoint asks for, so a results folder made before the
        # manifests (validation/chunks/*.tsv, not outputs: see above) reruns validate
        chunks=f"{R}/validation/chunks.json",
        report=f"{R}/validation/report.json",
        clips=f"{R}/validation/clips.csv",
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
        "../../envs/rule-slim.yaml"
    script:
        "../../scripts/validate.py"


# Pseudo-groups when the table names none (cv.auto_groups): the training clips clustered on a speaker
# embedding: a configured backbone's where it is the one asked for, else its own, made by embed jobs per
# training chunk (embed.smk, backbone `auto_groups`). No fold or seed param: a fold change never re-embeds.
if AUTO_GROUPS:

    rule auto_groups:
        input:
            embeddings=lambda wc: embeddings(GROUPS_EMBEDDING, "train"),
        output:
            groups=f"{R}/validation/auto_groups.csv",
            summary=f"{R}/validation/auto_groups.json",
        params:
            backbone_name=GROUPS_BACKBONE or GROUPS_BACKBONE_OPTIONS["type"],
            backbone=GROUPS_BACKBONE_OPTIONS,
            threshold=config["cv"]["auto_groups_threshold"],
        log:
            f"{R}/logs/auto_groups.log",
        benchmark:
            f"{R}/benchmarks/auto_groups.tsv"
        threads: 2
        resources:
            mem_mb=8000,
            runtime=120,
        conda:
            "../../envs/rule-models.yaml"
        script:
            "../../scripts/auto_groups.py"


# Task, folds and targets: read by train and later steps only. The clip table is an input only under
# audio.bad_audio: skip (its skipped training rows leave the targets); otherwise no row is ever dropped,
# so audio.* (validate's params) never reruns prepare. Under cv.group_duplicates the content hashes are
# an input (identical training clips share a fold group): a clip added, removed or edited in the audio
# folders then reruns prepare too. Under cv.auto_groups (no group or fold column) the pseudo-groups are an input.
rule prepare:
    input:
        train_csv=DATA["train_csv"],
        test_csv=optional(DATA["test_csv"]),
        sample_submission=optional(DATA["sample_submission"]),
        clips=[rules.validate.output.clips] if config["audio"]["bad_audio"] == "skip" else [],
        hashes=[rules.hashes.output.hashes] if config["cv"]["group_duplicates"] else [],
        auto_groups=[rules.auto_groups.output.groups] if AUTO_GROUPS else [],
        auto_groups_summary=[rules.auto_groups.output.summary] if AUTO_GROUPS else [],
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
        seed=config["seed"],
    log:
        f"{R}/logs/prepare.log",
    benchmark:
        f"{R}/benchmarks/prepare.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/rule-slim.yaml"
    script:
        "../../scripts/prepare.py"
