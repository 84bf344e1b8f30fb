"""Rule validate -> audiofold.validate.run_validation (check every clip, apply audio.bad_audio)."""
from pathlib import Path

from audiofold.rulekit import run_rule
from audiofold.validate import run_validation


def main(smk):
    data = smk.params.data
    audio_dirs = [d for d in (data["train_audio_dir"], data.get("test_audio_dir")) if d]
    run_validation(smk.input.manifest, smk.input.targets, policy=smk.params.audio["bad_audio"],
                   max_seconds=smk.params.audio["max_seconds"], audio_dirs=audio_dirs,
                   out_dir=Path(smk.output.report).parent)


run_rule(snakemake, main)  # noqa: F821
