"""Rule embed -> audiofold.embed.embed_clips (one backbone, one chunk of clips, through the embedding cache)."""

from audiofold.backbones import build_backbone, split_backbone_config
from audiofold.cache import EmbeddingCache, config_key
from audiofold.clips import manifest_digests, read_chunk_manifest
from audiofold.embed import embed_clips
from audiofold.io import stable_hash
from audiofold.rulekit import run_rule


def main(smk):
    params, extraction = split_backbone_config(smk.params.backbone)
    backbone = build_backbone(smk.wildcards.backbone, params)
    # the cache's place is not a param: moving it must not rerun anything
    cache_dir = smk.config.get("cache_dir") or f"{smk.config['results_dir']}/cache"
    cache = EmbeddingCache(cache_dir, config_key(smk.params.backbone, smk.params.max_seconds))
    # the clips and their content hashes (from the hashes step): unchanged files are not hashed again
    embed_clips(
        read_chunk_manifest(smk.input.manifest),
        backbone,
        smk.output[0],
        max_seconds=smk.params.max_seconds,
        cache=cache,
        threads=smk.threads,
        meta={
            "backbone_name": smk.wildcards.backbone,
            "shard": smk.wildcards.shard,
            "config_hash": stable_hash(smk.params.backbone),
        },
        known_digests=manifest_digests(smk.input.manifest),
        **extraction,
    )


run_rule(snakemake, main)  # noqa: F821
