rule embed:
    input:
        audio=lambda wc: f"{R}/audio/{backbone_sr(wc.backbone)}hz/{wc.shard}.npz",
    output:
        f"{R}/embeddings/{{backbone}}/{{shard}}.npz",
    params:
        backbone=lambda wc: config["backbones"][wc.backbone],
        seed=config["seed"],
    log:
        f"{R}/logs/embed/{{backbone}}/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/embed/{{backbone}}/{{shard}}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=lambda wc: gpus("backbones", wc.backbone),
    script:
        "../../scripts/embed.py"
