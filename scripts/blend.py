"""Rule blend -> audiofold.ensemble.blend.blend_files (grid, greedy or stacker chosen on OOF; rounding decided on it)."""

from audiofold.ensemble.blend import blend_files
from audiofold.ensemble.options import BlendOptions
from audiofold.rulekit import run_rule
from audiofold.tasks import load_task


def main(smk):
    blend_files(
        dict(zip(smk.params.candidates, smk.input.oof)),
        dict(zip(smk.params.candidates, smk.input.test)),
        load_task(smk.input.task),
        smk.output.oof,
        smk.output.test,
        smk.output.weights,
        BlendOptions.from_params(smk.params),
    )


run_rule(snakemake, main)  # noqa: F821
