if config["demo"]["enabled"]:

    rule demo_data:
        output:
            train=DATA["train_csv"],
            test=DATA["test_csv"],
            sample=DATA["sample_submission"],
            train_audio=directory(DATA["train_audio_dir"]),
            test_audio=directory(DATA["test_audio_dir"]),
        params:
            demo=config["demo"],
        log:
            f"{R}/logs/demo_data.log",
        benchmark:
            f"{R}/benchmarks/demo_data.tsv"
        resources:
            mem_mb=2000,
            runtime=10,
        script:
            "../../scripts/demo_data.py"


# The clip list and its audio checks: everything embedding depends on, and nothing about labels or
# folds, so cv.*, seed, groups and labels never rerun it. A checkpoint: its clips.csv gives the chunks.
checkpoint validate:
    input:
        tables=table_inputs(),
        audio=audio_inputs,  # an added, removed or edited clip reruns the clip list and what follows
    output:
        report=f"{R}/validation/report.json",
        clips=f"{R}/validation/clips.csv",
    params:
        data={k: DATA.get(k) for k in ("train_csv", "test_csv", "sample_submission", "train_audio_dir",
                                       "test_audio_dir", "id_column", "path_column", "audio_extensions")},
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
    script:
        "../../scripts/validate.py"


# Task, folds and targets: read by train and later steps only.
rule prepare:
    input:
        tables=table_inputs(),
        clips=f"{R}/validation/clips.csv",
    output:
        task=f"{R}/task.json",
        folds=f"{R}/folds.csv",
        targets=f"{R}/targets.npz",
    params:
        data=DATA,
        task=config["task"],
        cv=config["cv"],
        seed=config["seed"],
    log:
        f"{R}/logs/prepare.log",
    benchmark:
        f"{R}/benchmarks/prepare.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/prepare.py"
