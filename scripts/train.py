"""Rules train / refit -> audiofold.train.train_fold (one backbone x head x fold, or all rows)."""

from audiofold.io import stable_hash
from audiofold.rulekit import run_rule
from audiofold.tasks import load_task
from audiofold.train import train_fold


def main(smk):
    train_fold(
        train_shards=smk.input.train,
        test_shards=smk.input.test,
        targets_path=smk.input.targets,
        task=load_task(smk.input.task),
        fold=int(smk.wildcards.fold) if hasattr(smk.wildcards, "fold") else None,
        head_params=dict(smk.params.head),
        head_name=smk.wildcards.head,
        seed=smk.params.seed,
        model_out=smk.output.model,
        preds_out=smk.output.preds,
        threads=max(1, int(smk.threads or 1)),
        backbone=smk.wildcards.backbone,
        test_predictions=smk.params.test_predictions,
        pseudo_labels=dict(smk.params.pseudo_labels),
        meta={"backbone": smk.wildcards.backbone, "config_hash": stable_hash(smk.params.head)},
    )


run_rule(snakemake, main)  # noqa: F821
