"""Rule auto_groups -> audiofold.auto_groups.auto_groups (pseudo-groups from clustered training embeddings)."""

from audiofold.auto_groups import auto_groups
from audiofold.embed import load_embeddings
from audiofold.rulekit import run_rule


def main(smk):
    p = smk.params
    # a configured backbone's training embeddings, or the step's own (embed jobs of backbone auto_groups)
    ids, X = load_embeddings(list(smk.input.embeddings))
    auto_groups(ids, X, p.threshold, p.backbone_name, smk.output.groups, smk.output.summary)


run_rule(snakemake, main)  # noqa: F821
