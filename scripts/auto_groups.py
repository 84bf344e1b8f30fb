"""Rule auto_groups -> audiofold.auto_groups.auto_groups (pseudo-groups from clustered training embeddings)."""

from audiofold.auto_groups import auto_groups, embed_for_groups
from audiofold.embed import load_embeddings
from audiofold.rulekit import run_rule


def main(smk):
    p = smk.params
    if smk.input.embeddings:  # a configured backbone's training embeddings
        ids, X = load_embeddings(list(smk.input.embeddings))
    else:
        # the cache's place is not a param: moving it must not rerun anything
        cache_dir = smk.config.get("cache_dir") or f"{smk.config['results_dir']}/cache"
        ids, X = embed_for_groups(
            p.clips, p.backbone, max_seconds=p.max_seconds, cache_dir=cache_dir, threads=smk.threads
        )
    auto_groups(ids, X, p.threshold, p.backbone_name, smk.output.groups, smk.output.summary)


run_rule(snakemake, main)  # noqa: F821
