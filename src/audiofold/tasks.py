"""Task description (what is predicted, from which columns) and label encoding.

Kinds and their target/prediction arrays (n = rows):
- ``regression``: one numeric target on a rating scale. y: float (n, 1). P: float (n, 1).
- ``multitarget``: several numeric targets (e.g. valence, arousal). y, P: float (n, T).
- ``classification``: one label per row. y: int (n,) class index. P: float (n, C) probabilities.
- ``multilabel``: any number of labels per row. y: float (n, C) in {0, 1}. P: float (n, C) scores.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataError
from .io import read_json

log = logging.getLogger(__name__)

KINDS = ("regression", "multitarget", "classification", "multilabel")
REGRESSION_KINDS = ("regression", "multitarget")


@dataclasses.dataclass
class TaskSpec:
    kind: str
    id_column: str
    label_columns: list[str]
    classes: list[str] | None = None
    # multilabel given as one string column ("a,b;c"); None when the labels are wide 0/1 columns
    label_sep: str | None = None
    # rating scale for regression kinds: {"min": .., "max": .., "step": .. or None}
    scale: dict[str, float | None] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DataError(f"task.kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind in ("classification", "multilabel") and not self.classes:
            raise DataError(f"task kind {self.kind!r} needs a non-empty class list")

    @property
    def is_regression(self) -> bool:
        return self.kind in REGRESSION_KINDS

    @property
    def output_names(self) -> list[str]:
        """Names of the prediction columns (P[:, j])."""
        return list(self.label_columns) if self.is_regression else list(self.classes or [])

    @property
    def n_outputs(self) -> int:
        return len(self.output_names)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskSpec:
        return cls(**d)

    # ---- labels ---------------------------------------------------------------------------
    def split_labels(self, value: Any) -> list[str]:
        """Tokens of one multilabel string cell; ``;`` and the declared separator are both accepted."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return []
        seps = {self.label_sep or ",", ",", ";"}
        pattern = "|".join(re.escape(s) for s in sorted(seps, key=len, reverse=True))
        return [t.strip() for t in re.split(pattern, str(value)) if t.strip()]

    def encode_targets(self, df: pd.DataFrame, source: str = "train table") -> np.ndarray:
        """Labels of ``df`` as the kind's target array; errors name the row and column."""
        missing = [c for c in self.label_columns if c not in df.columns]
        if missing:
            raise DataError(
                f"{source}: label column(s) {missing} not found; columns are {list(df.columns)}. "
                "Set data.label_columns in config.yaml."
            )
        ids = _raw(df)[self.id_column].astype(str).tolist() if self.id_column in df.columns else None  # '0004', not '4'

        def where(i: int) -> str:
            return f"{source}, row {i + 2} (id {ids[i]!r})" if ids else f"{source}, row {i + 2}"

        if self.is_regression:
            values = df[self.label_columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
            bad = np.argwhere(~np.isfinite(values))
            if len(bad):
                i, j = bad[0]
                raise DataError(
                    f"{where(int(i))}: label {self.label_columns[j]!r} is {_cell(df, int(i), self.label_columns[j])}, "
                    f"not a number ({len(bad)} such cells). Fix or drop these rows."
                )
            self._check_scale(values, where)
            return values.astype(np.float32)

        classes = list(self.classes or [])
        index = {c: k for k, c in enumerate(classes)}
        if self.kind == "classification":
            col = self.label_columns[0]
            out = np.empty(len(df), dtype=np.int64)
            for i, v in enumerate(df[col].tolist()):
                key = _class_key(v)
                if key not in index:
                    raise DataError(
                        f"{where(i)}: class {v!r} in column {col!r} is not a known class "
                        f"({len(classes)} classes: {classes[:10]}{'...' if len(classes) > 10 else ''})."
                    )
                out[i] = index[key]
            return out

        # multilabel
        if self.label_sep is None:  # wide 0/1 columns, one per class
            values = df[self.label_columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
            bad = np.argwhere(~np.isin(values, (0.0, 1.0)))
            if len(bad):
                i, j = bad[0]
                raise DataError(f"{where(int(i))}: column {self.label_columns[j]!r} must be 0 or 1.")
            return values.astype(np.float32)
        col = self.label_columns[0]
        out = np.zeros((len(df), len(classes)), dtype=np.float32)
        unknown: dict[str, int] = {}
        empty = [i for i, v in enumerate(df[col].tolist()) if not self.split_labels(v)]
        if empty:
            raise DataError(
                f"{where(empty[0])}: column {col!r} is empty ({len(empty)} such rows, e.g. rows "
                f"{[i + 2 for i in empty[:10]]}); every clip needs at least one label. Fill or drop these rows."
            )
        for i, v in enumerate(df[col].tolist()):
            for tok in self.split_labels(v):
                if tok in index:
                    out[i, index[tok]] = 1.0
                else:
                    unknown.setdefault(tok, i)
        if unknown:
            listed = ", ".join(f"{t!r} ({where(i)})" for t, i in list(unknown.items())[:10])
            raise DataError(
                f"{source}: {len(unknown)} unknown label(s) in column {col!r}: {listed}. "
                "Add them to the class list (sample submission columns) or fix the rows."
            )
        return out

    def _check_scale(self, values: np.ndarray, where) -> None:
        """Ratings must lie inside the declared task.scale and on its step grid."""
        scale = self.scale or {}
        low, high, step = scale.get("min"), scale.get("max"), scale.get("step")
        checks = []
        if low is not None:
            checks.append((values < low - 1e-9, f"below the declared minimum {low}"))
        if high is not None:
            checks.append((values > high + 1e-9, f"above the declared maximum {high}"))
        if step:
            origin = low if low is not None else 0.0
            off = ~np.isclose((values - origin) / step, np.round((values - origin) / step), atol=1e-6)
            checks.append((off, f"off the declared step {step}"))
        for mask, what in checks:
            bad = np.argwhere(mask)
            if len(bad):
                i, j = bad[0]
                raise DataError(
                    f"{where(int(i))}: label {self.label_columns[j]!r} = {values[i, j]:g} is {what} "
                    f"(task.scale; {len(bad)} such cells). Fix the labels or the declared task.scale."
                )


def _raw(df: pd.DataFrame) -> pd.DataFrame:
    """The table's cells as text when read by read_table (and not since subset), else the frame itself."""
    raw = df.attrs.get("raw")
    return raw if raw is not None and raw.index.equals(df.index) else df


def _cell(df: pd.DataFrame, i: int, col: str) -> str:
    """One cell as written in the file, for messages ('empty' for a blank cell)."""
    v = _raw(df)[col].iloc[i]
    return "empty" if v is None or (isinstance(v, float) and math.isnan(v)) or not str(v).strip() else repr(str(v))


def _class_key(v: Any) -> str:
    """Class names are strings; integer-valued numbers map to '3', not '3.0'."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


# ---- inference from the tables -------------------------------------------------------------
_ID_NAME = re.compile(r"^(id|.*_id|.*id$|fname|file_?name|file|path|clip|audio|utt.*|name|recording)$", re.I)
_CLASS_NAME = re.compile(r"(class|category|label|target|scene|genre|species|tag)", re.I)
_META_NAME = re.compile(r"^(fold|split|group|speaker.*|.*_fold|set)$", re.I)
_STEPS = (0.5, 1.0, 0.25, 0.1)


def infer_id_column(df: pd.DataFrame, test_df: pd.DataFrame | None = None) -> tuple[str, str]:
    """(column, reason). Prefers an id-like name with unique values that the test table shares."""
    shared = [c for c in df.columns if test_df is None or c in test_df.columns]
    text = _raw(df)  # ids "NA" and "null" are distinct text, not two missing values
    for c in shared:
        if _ID_NAME.match(str(c)) and text[c].is_unique:
            return c, f"name looks like an id and its {len(df)} values are unique"
    for c in shared:
        if _ID_NAME.match(str(c)):
            return c, "name looks like an id (its values repeat: see the duplicate-id check)"
    for c in shared:
        if text[c].is_unique and not pd.api.types.is_float_dtype(df[c]):
            return c, "first column with unique values"
    raise DataError(
        f"cannot infer the id column from {list(df.columns)}: no column has unique values. Set data.id_column."
    )


def infer_label_columns(
    df: pd.DataFrame,
    id_column: str,
    test_df: pd.DataFrame | None,
    sample_df: pd.DataFrame | None,
    ignore: tuple[str, ...] = (),
) -> tuple[list[str], str]:
    skip = {id_column, *[c for c in ignore if c]}
    if sample_df is not None:
        sample_cols = [c for c in sample_df.columns if c not in skip and c != id_column]
        if sample_cols and all(c in df.columns for c in sample_cols):
            return sample_cols, "the sample submission's prediction columns"
    if test_df is not None:
        cols = [c for c in df.columns if c not in test_df.columns and c not in skip and not _META_NAME.match(str(c))]
        if cols:
            return cols, "columns in the training table but not in the test table"
    cols = [c for c in df.columns if c not in skip and not _META_NAME.match(str(c))]
    if not cols:
        raise DataError(f"cannot infer label columns from {list(df.columns)}. Set data.label_columns.")
    return cols[-1:], "last non-id column"


def infer_step(values: np.ndarray) -> float | None:
    """Coarsest grid step (0.5, 1, 0.25, 0.1) all values lie on, else None (continuous)."""
    for step in sorted(_STEPS, reverse=True):
        if np.allclose(values / step, np.round(values / step), atol=1e-6):
            return step
    return None


def _looks_multilabel(series: pd.Series) -> str | None:
    """The separator if several rows hold several tokens (',' or ';' or '|'), else None."""
    text = series.dropna().astype(str)
    for sep in (",", ";", "|"):
        if (text.str.contains(re.escape(sep), regex=True)).mean() > 0.05:
            return sep
    return None


def _tight_separator(series: pd.Series) -> str | None:
    """The separator if several rows hold it with no space around (``a,b``), else None.

    ``dog, barking`` (a space after the comma) reads like one class name with a comma in it.
    """
    text = series.dropna().astype(str)
    for sep in (",", ";", "|"):
        if text.str.contains(rf"\S{re.escape(sep)}\S", regex=True).mean() > 0.05:
            return sep
    return None


def _text_kind(series: pd.Series, sample_extra: list[str]) -> tuple[str, str]:
    """Classification or multilabel for one text label column.

    Multilabel only when the sample submission says so (its columns are the label names and rows
    hold several of them) or when a separator without spaces does; mixed evidence is warned about.
    """
    values = {str(v).strip() for v in series.dropna()}
    columns = set(sample_extra)
    probe = TaskSpec("multilabel", "_", ["_"], classes=["_"], label_sep=",")
    tokens = {t for v in values for t in probe.split_labels(v)}
    if len(sample_extra) > 1:
        if values <= columns:
            return "classification", "text labels, each one a column of the sample submission"
        if tokens <= columns:
            return "multilabel", "text labels, several per row, each one a column of the sample submission"
    loose = _looks_multilabel(series)
    tight = _tight_separator(series)
    if tight:
        if len(sample_extra) > 1 and not tokens <= columns:
            log.warning(
                "labels are separated by %r like label lists, but some names are not sample submission "
                "columns (e.g. %s); reading them as multilabel. Set task.kind if this is wrong.",
                tight,
                sorted(tokens - columns)[:5],
            )
        return "multilabel", f"text labels, several per row separated by {tight!r}"
    if loose:
        examples = sorted(v for v in values if loose in v)[:3]
        log.warning(
            "labels such as %s contain %r followed by a space: read as class names (one label per row). "
            "If they are lists of labels, set task.kind: multilabel and task.label_sep: %r.",
            examples,
            loose,
            loose,
        )
    if len(sample_extra) > 1:
        return "classification", "text labels, one per row; sample submission has a column per class"
    return "classification", "text labels, one per row"


def infer_task(
    df: pd.DataFrame,
    test_df: pd.DataFrame | None = None,
    sample_df: pd.DataFrame | None = None,
    *,
    id_column: str | None = None,
    label_columns: list[str] | None = None,
    kind: str = "auto",
    label_sep: str | None = None,
    classes: list[str] | None = None,
    scale: dict | None = None,
    ignore_columns: tuple[str, ...] = (),
) -> tuple[TaskSpec, list[str]]:
    """Work out the task from the tables; returns the spec and one line per inference made."""
    notes: list[str] = []
    if id_column is None:
        id_column, why = infer_id_column(df, test_df)
        notes.append(f"id column: {id_column!r} ({why})")
    elif id_column not in df.columns:
        raise DataError(f"data.id_column {id_column!r} is not a column of the training table {list(df.columns)}.")
    if label_columns is None:
        label_columns, why = infer_label_columns(df, id_column, test_df, sample_df, ignore_columns)
        notes.append(f"label column(s): {label_columns} ({why})")
    missing = [c for c in label_columns if c not in df.columns]
    if missing:
        raise DataError(
            f"label column(s) {missing} are not in the training table {list(df.columns)}. Fix data.label_columns."
        )

    sample_extra = [] if sample_df is None else [c for c in sample_df.columns if c != id_column]
    kept = [] if sample_df is None else passthrough_columns(sample_df, id_column, label_columns)
    if kept:
        sample_extra = [c for c in sample_extra if c not in kept]
        notes.append(
            f"sample submission column(s) {kept[:10]} hold text, not predictions: left out of the classes "
            "and targets; the submission copies them from the sample submission as they are"
        )
    if kind == "auto":
        kind, why = _infer_kind(df, label_columns, sample_extra)
        notes.append(f"task kind: {kind} ({why})")

    if kind in ("classification", "multilabel") and classes is None:
        classes, why = _infer_classes(df, label_columns, kind, label_sep, sample_extra)
        notes.append(f"{len(classes)} classes ({why})")
    if kind == "multilabel" and len(label_columns) == 1 and label_sep is None:
        label_sep = _tight_separator(df[label_columns[0]]) or _looks_multilabel(df[label_columns[0]]) or ","
        notes.append(f"multilabel separator: {label_sep!r}")
    if kind == "multilabel" and len(label_columns) > 1:
        label_sep = None
        classes = list(label_columns)
    if kind in REGRESSION_KINDS:
        unexpected = [c for c in sample_extra if c not in label_columns]
        if unexpected and not (len(sample_extra) == 1 and len(label_columns) == 1):  # one target, renamed: fine
            raise DataError(
                f"sample submission column(s) {unexpected[:10]} are not label columns {list(label_columns)}: the "
                "submission cannot fill them. Remove them from the sample submission, or set data.label_columns."
            )
    if kind in REGRESSION_KINDS and scale is None:
        values = df[label_columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise DataError(f"label column(s) {label_columns} hold no numbers; is task.kind right?")
        scale = {"min": float(finite.min()), "max": float(finite.max()), "step": infer_step(finite)}
        notes.append(f"rating scale: {scale['min']}..{scale['max']} step {scale['step']} (from the training labels)")
    spec = TaskSpec(
        kind=kind,
        id_column=id_column,
        label_columns=list(label_columns),
        classes=list(classes) if classes else None,
        label_sep=label_sep,
        scale=scale,
    )
    return spec, notes


def passthrough_columns(sample_df: pd.DataFrame, id_column: str, label_columns: list[str]) -> list[str]:
    """Sample submission columns that hold no predictions: text in a column that is not a label column
    (e.g. Kaggle's ``Usage``: Public/Private). Class scores and ratings are numbers, and a one-column
    label layout names its column after the label column; if no column is left for the predictions,
    the first one is taken to be it (a label column under another name)."""
    others = [c for c in sample_df.columns if c != id_column]

    def holds_text(column) -> bool:  # the sample may be read as strings: a value that is no number is text
        values = sample_df[column].dropna().astype(str).str.strip()
        values = values[values.ne("")]
        return bool(len(values)) and bool(pd.to_numeric(values, errors="coerce").isna().any())

    text = [c for c in others if c not in label_columns and holds_text(c)]
    if text and len(text) == len(others):
        text = text[1:]
    return text


def _infer_kind(df: pd.DataFrame, label_columns: list[str], sample_extra: list[str]) -> tuple[str, str]:
    cols = df[label_columns]
    numeric = all(pd.api.types.is_numeric_dtype(cols[c]) for c in label_columns)
    if len(label_columns) > 1:
        if numeric and np.isin(cols.to_numpy(dtype=float), (0.0, 1.0)).all():
            return "multilabel", "several 0/1 columns"
        if numeric:
            return "multitarget", f"{len(label_columns)} numeric label columns"
        raise DataError(f"label columns {label_columns} mix text and numbers; set task.kind and data.label_columns.")
    col = label_columns[0]
    series = cols[col]
    if not numeric:
        return _text_kind(series, sample_extra)
    values = series.dropna().to_numpy(dtype=float)
    integer = np.allclose(values, np.round(values))
    n_unique = len(np.unique(values))
    if (
        integer
        and _CLASS_NAME.search(str(col))
        and n_unique <= 100
        and infer_step(values) == 1.0
        and len(sample_extra) > 1
    ):
        return "classification", f"integer codes in {col!r} and a sample submission column per class"
    if integer and re.search(r"(class|category|label)", str(col), re.I) and n_unique <= 100:
        return "classification", f"integer codes in a column named {col!r}"
    return "regression", f"numeric values in {col!r} ({n_unique} distinct)"


def _infer_classes(df, label_columns, kind, label_sep, sample_extra) -> tuple[list[str], str]:
    if kind == "multilabel" and len(label_columns) == 1:
        probe = TaskSpec("multilabel", "_", label_columns, classes=["_"], label_sep=label_sep)
        seen = {t for v in df[label_columns[0]].tolist() for t in probe.split_labels(v)}
    else:
        seen = {_class_key(v) for v in df[label_columns[0]].dropna().tolist()}
    _warn_case_variants(seen)
    if len(sample_extra) > 1:
        classes = [str(c) for c in sample_extra]
        never = [c for c in classes if c not in seen]
        if never and len(label_columns) == 1:
            log.warning(
                "sample submission column(s) %s never occur as a training label; they are treated as "
                "classes and get predictions. If a column is not a class (e.g. Usage), remove it from "
                "the sample submission or set task.classes.",
                never[:10],
            )
        return classes, "the sample submission's columns"
    return sorted(seen, key=_natural_key), "the labels seen in training"


def _warn_case_variants(labels: set[str]) -> None:
    """Labels that differ only in case ('Dog', 'dog') are kept apart, but are usually a typo."""
    by_key: dict[str, list[str]] = {}
    for label in labels:
        by_key.setdefault(label.casefold(), []).append(label)
    variants = [sorted(v) for v in by_key.values() if len(v) > 1]
    if variants:
        log.warning(
            "%d label(s) differ only in case and are kept as separate classes: %s. If they are one class, "
            "fix the training table.",
            len(variants),
            sorted(variants)[:10],
        )


def _natural_key(s: str):
    return (0, float(s), "") if re.fullmatch(r"-?\d+(\.\d+)?", s) else (1, 0.0, s)


def load_task(path) -> TaskSpec:
    """The task a prepare step wrote (``task.json``'s ``task``)."""
    return TaskSpec.from_dict(read_json(path)["task"])


def task_from_config(
    train: pd.DataFrame, test: pd.DataFrame | None, sample: pd.DataFrame | None, config: dict
) -> tuple[TaskSpec, list[str]]:
    """``infer_task`` with what the config says (``data.*`` columns, ``task.*``); the group, fold and
    path columns are never labels."""
    data, task_cfg = config["data"], config.get("task", {})
    return infer_task(
        train,
        test,
        sample,
        id_column=data.get("id_column"),
        label_columns=data.get("label_columns"),
        kind=task_cfg.get("kind", "auto"),
        label_sep=task_cfg.get("label_sep"),
        classes=task_cfg.get("classes"),
        scale=task_cfg.get("scale"),
        ignore_columns=tuple(
            c for c in (data.get("group_column"), data.get("fold_column"), data.get("path_column")) if c
        ),
    )
