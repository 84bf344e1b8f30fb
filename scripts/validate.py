"""Rule validate -> audiofold.validate.run_validation (list the clips and their chunks, check every clip)."""
from pathlib import Path

from audiofold.rulekit import run_rule
from audiofold.validate import run_validation


DATA_KEYS = ("train_csv", "test_csv", "sample_submission", "train_audio_dir", "test_audio_dir", "id_column",
             "path_column", "audio_extensions")


def main(smk):
    run_validation({k: getattr(smk.params, k) for k in DATA_KEYS}, policy=smk.params.bad_audio, max_seconds=smk.params.max_seconds,
                   shard_clips=smk.params.shard_clips, out_dir=Path(smk.output.report).parent)


run_rule(snakemake, main)  # noqa: F821
