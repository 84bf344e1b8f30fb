"""Rule prepare -> audiofold.prepare.prepare (task inference, folds, manifest, targets)."""
from pathlib import Path

from audiofold.prepare import prepare
from audiofold.rulekit import run_rule


def main(smk):
    config = {"data": smk.params.data, "task": smk.params.task, "cv": smk.params.cv,
              "audio": smk.params.audio, "seed": smk.params.seed}
    prepare(config, Path(smk.output.task).parent)


run_rule(snakemake, main)  # noqa: F821
