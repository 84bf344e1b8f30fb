"""Rule prepare -> audiofold.prepare.prepare (task inference, folds, targets without skipped clips)."""
from pathlib import Path

from audiofold.clips import read_clips
from audiofold.prepare import prepare
from audiofold.rulekit import run_rule


def main(smk):
    config = {"data": smk.params.data, "task": smk.params.task, "cv": smk.params.cv, "seed": smk.params.seed}
    clips = read_clips(smk.input.clips)
    prepare(config, Path(smk.output.task).parent, skipped=set(clips.loc[clips["action"] == "skip", "id"]))


run_rule(snakemake, main)  # noqa: F821
