"""Rule hashes -> audiofold.hashes.hash_clips (content hash of every clip's file)."""

from audiofold.hashes import hash_clips
from audiofold.rulekit import optional_input, run_rule

TABLES = ("train_csv", "test_csv", "sample_submission")
DATA_KEYS = ("train_audio_dir", "test_audio_dir", "id_column", "path_column", "audio_extensions")


def main(smk):
    data = {**{k: optional_input(smk, k) for k in TABLES}, **{k: getattr(smk.params, k) for k in DATA_KEYS}}
    # the embedding cache remembers file hashes; its place is not a param: moving it must not rerun anything
    cache_dir = smk.config.get("cache_dir") or f"{smk.config['results_dir']}/cache"
    hash_clips(data, cache_dir, smk.output.hashes)


run_rule(snakemake, main)  # noqa: F821
