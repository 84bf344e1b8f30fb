"""Rule validate -> audiofold.validate.run_validation (list the clips and their chunks, check every clip)."""

from pathlib import Path

from audiofold.rulekit import optional_input, run_rule
from audiofold.validate import run_validation

TABLES = ("train_csv", "test_csv", "sample_submission")
DATA_KEYS = ("train_audio_dir", "test_audio_dir", "id_column", "path_column", "audio_extensions")


def main(smk):
    data = {**{k: optional_input(smk, k) for k in TABLES}, **{k: getattr(smk.params, k) for k in DATA_KEYS}}
    run_validation(
        data,
        policy=smk.params.bad_audio,
        max_seconds=smk.params.max_seconds,
        shard_clips=smk.params.shard_clips,
        out_dir=Path(smk.output.report).parent,
        hashes_path=smk.input.hashes,
    )


run_rule(snakemake, main)  # noqa: F821
