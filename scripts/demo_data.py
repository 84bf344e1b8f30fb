"""Rule demo_data -> audiofold.demo_data.generate_demo (writes into a temp folder, then moves into place)."""

from pathlib import Path

from audiofold.demo_data import materialise_demo
from audiofold.rulekit import run_rule


def main(smk):
    materialise_demo(
        Path(smk.output.train).parent,
        {k: getattr(smk.params, k) for k in ("kind", "n_train", "n_test", "seed")},
        outputs=dict(smk.output.items()),
    )


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
