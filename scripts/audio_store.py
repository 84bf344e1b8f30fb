"""Rule audio_store -> audiofold.audio_store.audio_store (one chunk of clips at one sample rate)."""

from audiofold.audio_store import audio_store
from audiofold.clips import read_chunk_manifest
from audiofold.rulekit import run_rule


def main(smk):
    audio_store(
        read_chunk_manifest(smk.input.manifest),
        int(smk.wildcards.sr),
        smk.output.waves,
        smk.output.index,
        max_seconds=smk.params.max_seconds,
        decode_workers=max(1, int(smk.threads or 1)),
    )


run_rule(snakemake, main)  # noqa: F821
