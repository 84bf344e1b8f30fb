# One job per backbone x chunk of clips: decodes its clips (a thread pool one block ahead of the
# model), reuses cached per-clip embeddings (audiofold.cache) and embeds only the misses. Its input is
# the chunk's manifest, not its audio files (common.smk chunk_manifest).
rule embed:
    input:
        manifest=chunk_manifest,
    output:
        f"{R}/embeddings/{{backbone}}/{{shard}}.npz",
    params:
        backbone=lambda wc: backbone_options(wc.backbone),
        max_seconds=config["audio"]["max_seconds"],
    log:
        f"{R}/logs/embed/{{backbone}}/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/embed/{{backbone}}/{{shard}}.tsv"
    threads: lambda wc: embed_threads(wc.backbone)
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=lambda wc: gpus("backbones", wc.backbone),
    conda:
        "../../envs/rule-models.yaml"
    script:
        "../../scripts/embed.py"


# `snakemake embed_all`: every backbone's embeddings and nothing after them (e.g. embed on a GPU
# partition, then train elsewhere). `--until embed` cannot stand in: it does not follow the validate
# checkpoint into the chunks it lists, and so finds nothing to do.
rule embed_all:
    input:
        lambda wc: [
            path for backbone in BACKBONES for split in ("train", "test") for path in embeddings(backbone, split)
        ]
        + (embeddings(GROUPS_EMBEDDING, "train") if AUTO_GROUPS else []),
    localrule: True
    default_target: False
