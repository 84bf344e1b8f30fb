"""Rules finetune / finetune_refit -> audiofold.finetune.finetune_fold (one model x fold, or all rows)."""

from audiofold.finetune import FinetuneOptions, candidate_backbone, finetune_fold, refit_epochs
from audiofold.io import stable_hash
from audiofold.rulekit import run_rule
from audiofold.tasks import load_task


def main(smk):
    model = smk.wildcards.ftmodel
    refit = not hasattr(smk.wildcards, "fold")
    finetune_fold(
        model_name=model,
        options=FinetuneOptions.from_config(dict(smk.params.model), f"finetune.{model}"),
        train_stores=smk.input.train,
        test_stores=smk.input.test,
        targets_path=smk.input.targets,
        task=load_task(smk.input.task),
        fold=None if refit else int(smk.wildcards.fold),
        seed=smk.params.seed,
        preds_out=smk.output.preds,
        model_out=smk.output.model,
        history_out=smk.output.history,
        checkpoint_dir=smk.params.checkpoint_dir,
        epochs=refit_epochs(smk.input.folds) if refit else None,
        threads=max(1, int(smk.threads or 1)),
        pseudo_labels=dict(smk.params.pseudo_labels),
        meta={"backbone": candidate_backbone(model), "config_hash": stable_hash(smk.params.model)},
    )


run_rule(snakemake, main)  # noqa: F821
