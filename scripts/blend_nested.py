"""Rule blend_nested -> audiofold.nested.nested_files (honest score of calibrate -> blend -> round)."""
from audiofold.nested import nested_files
from audiofold.prepare import load_task
from audiofold.rulekit import run_rule


def main(smk):
    nested_files(dict(zip(smk.params.candidates, smk.input.oof)), load_task(smk.input.task), smk.output.oof,
                 smk.output.summary, calibrate=smk.params.calibrate["enabled"], step=smk.params.blend["step"],
                 max_candidates=smk.params.blend["max_candidates"], round_mode=smk.params.submission["round"])


run_rule(snakemake, main)  # noqa: F821
