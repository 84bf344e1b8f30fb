"""Rule finetune_curves -> audiofold.finetune_curves.finetune_curves (every fine-tuned model's per-epoch logs)."""

from pathlib import Path

from audiofold.finetune_curves import finetune_curves
from audiofold.rulekit import run_rule


def main(smk):
    histories = {}
    for path in smk.input.histories:
        histories.setdefault(Path(path).parent.name, []).append(path)
    finetune_curves(histories, smk.output.curves)


run_rule(snakemake, main)  # noqa: F821
