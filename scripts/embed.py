"""Rule embed -> audiofold.embed.embed_shard (one backbone, one shard)."""
from audiofold.backbones import build_backbone
from audiofold.embed import embed_shard
from audiofold.io import stable_hash
from audiofold.rulekit import run_rule


def main(smk):
    params = dict(smk.params.backbone)
    tta = params.pop("tta", {})
    batch_size = params.pop("batch_size", 32)
    backbone = build_backbone(smk.wildcards.backbone, params)
    embed_shard(smk.input.audio, backbone, smk.output[0], batch_size=batch_size, seed=smk.params.seed,
                threads=smk.threads, meta={"backbone_name": smk.wildcards.backbone, "shard": smk.wildcards.shard,
                      "config_hash": stable_hash(smk.params.backbone)}, **tta)


run_rule(snakemake, main)  # noqa: F821
