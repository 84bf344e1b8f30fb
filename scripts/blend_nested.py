"""Rule blend_nested -> audiofold.ensemble.blend_nested.nested_files (honest score of calibrate -> blend -> round)."""

from audiofold.ensemble.blend_nested import nested_files
from audiofold.ensemble.options import BlendOptions
from audiofold.rulekit import run_rule
from audiofold.tasks import load_task


def main(smk):
    nested_files(
        dict(zip(smk.params.candidates, smk.input.oof)),
        load_task(smk.input.task),
        smk.output.oof,
        smk.output.summary,
        BlendOptions.from_params(smk.params),
        calibrate=smk.params.calibrate,
        targets_path=smk.input.targets,
        seed=smk.params.seed,
    )


run_rule(snakemake, main)  # noqa: F821
