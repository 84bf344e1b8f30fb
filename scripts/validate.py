"""Rule validate -> audiofold.validate.run_validation (list the clips and their chunks, check every clip)."""
from pathlib import Path

from audiofold.rulekit import run_rule
from audiofold.validate import run_validation


def main(smk):
    run_validation(smk.params.data, policy=smk.params.bad_audio, max_seconds=smk.params.max_seconds,
                   shard_clips=smk.params.shard_clips, out_dir=Path(smk.output.report).parent)


run_rule(snakemake, main)  # noqa: F821
