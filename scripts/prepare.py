"""Rule prepare -> audiofold.prepare.prepare (task inference, folds, targets without skipped clips)."""

from pathlib import Path

from audiofold.auto_groups import read_auto_groups
from audiofold.clips import read_clips
from audiofold.hashes import identical_sets
from audiofold.prepare import prepare
from audiofold.rulekit import optional_input, run_rule

TABLES = ("train_csv", "test_csv", "sample_submission")
DATA_KEYS = ("id_column", "label_columns", "group_column", "fold_column", "path_column")


def main(smk):
    p = smk.params
    data = {**{k: optional_input(smk, k) for k in TABLES}, **{k: getattr(p, k) for k in DATA_KEYS}}
    config = {
        "data": data,
        "task": {"kind": p.kind, "label_sep": p.label_sep, "classes": p.classes, "scale": p.scale},
        "cv": {"n_folds": p.n_folds, "n_bins": p.n_bins, "group_duplicates": p.group_duplicates},
        "seed": p.seed,
    }
    # the clip table is an input only under audio.bad_audio: skip (no row is dropped otherwise)
    skipped = set()
    for path in smk.input.get("clips", []):
        clips = read_clips(path)
        skipped |= set(clips.loc[clips["action"] == "skip", "id"])
    # the content hashes are an input only under cv.group_duplicates: sets of identical training clips
    hashes = optional_input(smk, "hashes")
    identical = identical_sets(read_clips(hashes)) if hashes else None
    # the pseudo-groups are inputs only under cv.auto_groups without a group or fold column
    found = optional_input(smk, "auto_groups")
    auto = read_auto_groups(found, optional_input(smk, "auto_groups_summary")) if found else None
    prepare(config, Path(smk.output.task).parent, skipped=skipped, identical=identical, auto_groups=auto)


run_rule(snakemake, main)  # noqa: F821
