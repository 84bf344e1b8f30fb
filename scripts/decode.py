"""Rule decode -> audiofold.audio.decode_shard (one shard at one sample rate)."""
import pandas as pd

from audiofold.audio import decode_shard
from audiofold.rulekit import run_rule


def main(smk):
    # The validated manifest: skipped training rows are left out, zero-filled clips become silence.
    manifest = pd.read_csv(smk.input.manifest, dtype={"id": str, "shard": str, "path": str, "action": str},
                           keep_default_na=False)
    rows = manifest[(manifest["shard"] == smk.wildcards.shard) & (manifest["action"] != "skip")]
    decode_shard(rows["path"].tolist(), rows["id"].tolist(), int(smk.wildcards.sr), smk.output[0],
                 max_seconds=smk.params.max_seconds, zero_fill=set(rows.loc[rows["action"] == "zeros", "id"]))


run_rule(snakemake, main)  # noqa: F821
