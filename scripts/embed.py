"""Rule embed -> audiofold.embed.embed_shard (one backbone, one shard)."""
from audiofold.backbones import build_backbone
from audiofold.embed import embed_shard, split_backbone_config
from audiofold.io import stable_hash
from audiofold.rulekit import run_rule


def main(smk):
    params, extraction = split_backbone_config(smk.params.backbone)
    backbone = build_backbone(smk.wildcards.backbone, params)
    embed_shard(smk.input.audio, backbone, smk.output[0], seed=smk.params.seed, threads=smk.threads,
                meta={"backbone_name": smk.wildcards.backbone, "shard": smk.wildcards.shard,
                      "config_hash": stable_hash(smk.params.backbone)}, **extraction)


run_rule(snakemake, main)  # noqa: F821
