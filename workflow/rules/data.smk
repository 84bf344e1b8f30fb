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


rule prepare:
    input:
        tables=table_inputs(),
        audio=audio_inputs,  # resolves each id to its file: an added or removed clip changes the manifest
    output:
        task=f"{R}/task.json",
        folds=f"{R}/folds.csv",
        manifest=f"{R}/manifest.csv",
        targets=f"{R}/targets.npz",
    params:
        data=DATA,
        task=config["task"],
        cv=config["cv"],
        audio=config["audio"],
        seed=config["seed"],
        audio_fingerprint=audio_fingerprint,
    log:
        f"{R}/logs/prepare.log",
    benchmark:
        f"{R}/benchmarks/prepare.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/prepare.py"


rule validate:
    input:
        manifest=f"{R}/manifest.csv",
        targets=f"{R}/targets.npz",
        audio=audio_inputs,  # reads every clip: an edited clip reruns validate and everything after it
    output:
        report=f"{R}/validation/report.json",
        manifest=f"{R}/validation/manifest.csv",
        targets=f"{R}/validation/targets.npz",
    params:
        data=DATA,
        audio=config["audio"],
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


rule decode:
    input:
        # The validated manifest: no decode starts before every clip has been checked.
        manifest=f"{R}/validation/manifest.csv",
    output:
        f"{R}/audio/{{sr}}hz/{{shard}}.npz",
    params:
        max_seconds=config["audio"]["max_seconds"],
    log:
        f"{R}/logs/decode/{{sr}}hz/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/decode/{{sr}}hz/{{shard}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../../scripts/decode.py"
