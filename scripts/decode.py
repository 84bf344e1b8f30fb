"""Rule decode -> audiofold.audio.decode_shard (one shard at one sample rate)."""
import pandas as pd

from audiofold.audio import decode_shard
from audiofold.rulekit import run_rule


def main(smk):
    manifest = pd.read_csv(smk.input.manifest, dtype={"id": str, "shard": str, "path": str})
    rows = manifest[manifest["shard"] == smk.wildcards.shard]
    decode_shard(rows["path"].tolist(), rows["id"].tolist(), int(smk.wildcards.sr), smk.output[0],
                 max_seconds=smk.params.max_seconds)


run_rule(snakemake, main)  # noqa: F821
