"""Final predictions -> submission table in the sample submission's exact layout, and its checks.

Layouts: regression kinds write one column per target; classification writes either one
probability column per class (when the sample's value columns are the class names) or one
label column with the most probable class; multilabel writes either one score column per class
or one column of labels joined by the task's separator.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from .errors import DataError
from .io import load_npz, read_json, write_csv
from .postprocess import (
    GRID_TOLERANCE,
    finalize_predictions,
    label_mask,
    label_thresholds,
    scale_bounds,
    tune_label_quantile,
)
from .tables import id_column_values, read_table
from .tasks import TaskSpec, _class_key, passthrough_columns

MAX_LISTED = 10


def _labels_string(scores: np.ndarray, classes: list[str], threshold: float | np.ndarray, sep: str) -> list[str]:
    """Per row, the classes ``label_mask`` keeps, best first."""
    out = []
    for row, keep in zip(scores, label_mask(scores, threshold)):
        out.append(sep.join(classes[j] for j in np.argsort(-row, kind="stable") if keep[j]))
    return out


# ---- layout -------------------------------------------------------------------------------
def _id_column(sample: pd.DataFrame | None, task: TaskSpec) -> str:
    if sample is None or task.id_column in sample.columns:
        return task.id_column
    return str(sample.columns[0])


def _default_value_columns(task: TaskSpec) -> list[str]:
    if task.is_regression:
        return list(task.label_columns)
    if task.kind == "multilabel" and task.label_sep is None:
        return list(task.classes)
    return [task.label_columns[0]]


def _layout(columns: list[str], task: TaskSpec) -> str:
    """How the value columns hold predictions: "targets", "scores" (one per class) or "labels"."""
    if task.is_regression:
        names = task.output_names
        if set(columns) <= set(names) or len(columns) == len(names) == 1:
            return "targets"
        raise DataError(
            f"sample submission columns {columns[:MAX_LISTED]} do not match the label columns {names}; "
            "set data.label_columns to the sample submission's column names."
        )
    classes = task.output_names
    if sorted(columns) == sorted(classes):
        return "scores"
    if len(columns) == 1:
        return "labels"
    raise DataError(
        f"sample submission value columns {columns[:MAX_LISTED]} are neither the {len(classes)} class names "
        f"({classes[:MAX_LISTED]}) nor a single label column; check data.sample_submission and task.classes."
    )


def _values_frame(P: np.ndarray, task: TaskSpec, columns: list[str], threshold: float | np.ndarray) -> pd.DataFrame:
    """The value columns, in ``columns`` order, from P (rows already in output order)."""
    names = task.output_names
    layout = _layout(columns, task)
    if layout == "targets" and not set(columns) <= set(names):  # one target under another name
        return pd.DataFrame({columns[0]: P[:, 0]})
    if layout in ("targets", "scores"):
        return pd.DataFrame({c: P[:, names.index(c)] for c in columns})
    if task.kind == "classification":
        return pd.DataFrame({columns[0]: [names[j] for j in np.argmax(P, axis=1)]})
    return pd.DataFrame({columns[0]: _labels_string(P, names, threshold, task.label_sep or ",")})


def _id_differences(ids: list[str], expected: list[str]) -> str:
    missing = sorted(set(expected) - set(ids))
    extra = sorted(set(ids) - set(expected))
    return f"{len(missing)} missing (e.g. {missing[:MAX_LISTED]}), {len(extra)} unexpected (e.g. {extra[:MAX_LISTED]})"


def make_submission(
    test_ids: list[str],
    P: np.ndarray,
    task: TaskSpec,
    sample: pd.DataFrame | None,
    threshold: float | np.ndarray = 0.5,
    round_to_step: bool = True,
) -> pd.DataFrame:
    """Submission table: the sample's columns and id order (else ``test_ids`` order, default columns).

    ``P`` rows follow ``test_ids``; values go through ``finalize_predictions`` first. ``threshold``
    (multilabel label strings): one score threshold, or one per class in ``task.classes`` order.
    """
    P = finalize_predictions(np.asarray(P, dtype=np.float64).reshape(len(P), -1), task, round_to_step=round_to_step)
    test_ids = [str(i) for i in test_ids]
    if len(test_ids) != len(P):
        raise DataError(f"submission: {len(test_ids)} test ids but {len(P)} prediction rows.")
    if len(set(test_ids)) != len(test_ids):
        raise DataError("submission: test ids are not unique; check the test table.")
    id_col = _id_column(sample, task)

    if sample is None:
        ids_out, order = test_ids, np.arange(len(test_ids))
        columns = _default_value_columns(task)
    else:
        # matched the way prepare reads ids (spaces dropped, NFC); written exactly as the sample has them
        sample_ids = id_column_values(sample, id_col, "sample submission")
        if len(set(sample_ids)) != len(sample_ids):
            raise DataError(f"sample submission: column {id_col!r} has duplicated ids; check data.sample_submission.")
        if sorted(sample_ids) != sorted(test_ids):
            differences = _id_differences(test_ids, sample_ids)
            raise DataError(f"sample submission ids differ from the test ids: {differences}.")
        position = {i: k for k, i in enumerate(test_ids)}
        ids_out = sample[id_col].tolist()  # the sample's own id values and formatting
        order = np.array([position[i] for i in sample_ids], dtype=np.int64)
        kept = passthrough_columns(sample, id_col, task.label_columns)
        columns = [str(c) for c in sample.columns if c != id_col and c not in kept]

    sub = pd.concat([pd.DataFrame({id_col: ids_out}), _values_frame(P[order], task, columns, threshold)], axis=1)
    if sample is not None:
        raw = sample.attrs.get("raw", sample)  # text columns (e.g. Usage) copied as the sample writes them
        for col in kept:
            sub[col] = raw[col].to_numpy()
        sub = sub[[id_col, *(c for c in sample.columns if c != id_col)]]
        sub.columns = list(sample.columns)  # exact names, even non-string ones
    return sub


# ---- validation ---------------------------------------------------------------------------
def validate_submission(sub: pd.DataFrame, sample: pd.DataFrame | None, task: TaskSpec, on_grid: bool = True) -> None:
    """Raise DataError if ``sub`` would be rejected: ids, columns, NaN/inf, out-of-range values and,
    with ``on_grid`` (ratings were rounded), values off the scale grid."""
    id_col = _id_column(sample, task)
    if id_col not in sub.columns:
        raise DataError(f"submission has no id column {id_col!r}; columns are {list(sub.columns)[:MAX_LISTED]}.")
    ids = sub[id_col].astype(str)
    if sample is not None:
        if list(sub.columns) != list(sample.columns):
            raise DataError(
                f"submission columns {list(sub.columns)[:MAX_LISTED]} differ from the sample submission's "
                f"{list(sample.columns)[:MAX_LISTED]} (names and order must match)."
            )
        expected = sample[id_col].astype(str).tolist()  # make_submission writes the sample's ids as given
        if sorted(ids) != sorted(expected):
            differences = _id_differences(ids.tolist(), expected)
            raise DataError(f"submission ids differ from the sample submission: {differences}.")
        if ids.tolist() != expected:
            raise DataError("submission ids are not in the sample submission's order; reorder the rows.")
    if ids.duplicated().any():
        raise DataError(f"submission ids are duplicated: {ids[ids.duplicated()].tolist()[:MAX_LISTED]}.")

    kept = [] if sample is None else passthrough_columns(sample, id_col, task.label_columns)
    value_columns = [c for c in sub.columns if c != id_col and c not in kept]
    layout = _layout([str(c) for c in value_columns], task)
    for col in value_columns:
        if layout == "labels":
            _check_labels(sub[col], col, task)
            continue
        values = pd.to_numeric(sub[col], errors="coerce").to_numpy(dtype=np.float64)
        for bad, rule in _value_problems(values, task, layout, on_grid):
            if bad.any():
                first = ids.iloc[int(np.flatnonzero(bad)[0])]
                raise DataError(f"submission column {col!r} has {rule}: {int(bad.sum())} row(s), first id {first!r}.")


def _value_problems(
    values: np.ndarray, task: TaskSpec, layout: str, on_grid: bool = True
) -> Iterator[tuple[np.ndarray, str]]:
    """(rows that break a rule, the rule) for a numeric value column."""
    yield ~np.isfinite(values), "NaN, inf or non-numeric values"
    if layout == "scores":
        yield (values < 0) | (values > 1), "values outside [0, 1]"
        return
    low, high, step = scale_bounds(task)
    if low is not None:
        yield values < low, f"ratings below the scale minimum {low}"
    if high is not None:
        yield values > high, f"ratings above the scale maximum {high}"
    if step and on_grid:
        origin = 0.0 if low is None else low
        units = (values - origin) / step
        yield (
            np.abs(units - np.round(units)) > GRID_TOLERANCE,
            (f"ratings off the scale grid {origin} + k * {step} (use finalize_predictions)"),
        )


def _check_labels(series: pd.Series, col: str, task: TaskSpec) -> None:
    def tokens(value) -> list[str]:
        if pd.isna(value):
            return []
        return task.split_labels(value) if task.kind == "multilabel" else [_class_key(value)]

    rows = series.map(tokens)
    empty = int(rows.map(len).eq(0).sum())
    if empty:
        raise DataError(f"submission column {col!r} has empty labels in {empty} row(s).")
    unknown = sorted({t for row in rows for t in row} - set(task.classes))
    if unknown:
        raise DataError(f"submission column {col!r} has unknown labels {unknown[:MAX_LISTED]}.")


def write_submission(
    test_blend_path,
    task: TaskSpec,
    sample_path,
    out_path,
    threshold: float | str = 0.5,
    oof_blend_path=None,
    blend_decisions_path=None,
) -> pd.DataFrame:
    """Blended test predictions -> validated ``submission.csv`` in the sample submission's layout.

    ``threshold="auto"`` (multilabel label strings): the thresholds the blend chose on the OOF blend
    (``weights.json`` ``labels``, ``decide_label_thresholds``: one global or one per class) at the
    test scores' quantiles; without that record, the global quantile ``tune_label_quantile`` picks on
    the OOF blend (``oof_blend_path``: ids, y, P).
    ``blend_decisions_path``: the blend's ``weights.json``; its ``rounding.applied`` (decided on the
    OOF blend) says whether ratings are rounded to the scale step (without it they are)."""
    blend = load_npz(test_blend_path)
    round_to_step = True
    if blend_decisions_path is not None:
        round_to_step = bool(read_json(blend_decisions_path).get("rounding", {}).get("applied", True))
    sample = read_table(sample_path, "sample submission (data.sample_submission)").attrs["raw"] if sample_path else None
    if threshold == "auto":
        threshold = 0.5
        if task.kind == "multilabel":
            threshold = _auto_label_threshold(blend, task, oof_blend_path, blend_decisions_path)
    sub = make_submission(
        [str(i) for i in blend["ids"]], blend["P"], task, sample, threshold=threshold, round_to_step=round_to_step
    )
    validate_submission(sub, sample, task, on_grid=round_to_step)
    write_csv(out_path, sub)
    return sub


def _auto_label_threshold(blend: dict, task: TaskSpec, oof_blend_path, blend_decisions_path) -> float | np.ndarray:
    test = finalize_predictions(blend["P"].astype(np.float64), task)
    decision = read_json(blend_decisions_path).get("labels") if blend_decisions_path is not None else None
    if decision is None:  # a weights.json from before the blend chose the thresholds
        if oof_blend_path is None:
            raise ValueError("threshold 'auto' needs the OOF blend (oof_blend_path) or the blend's label thresholds")
        oof = load_npz(oof_blend_path)
        decision = {"quantile": tune_label_quantile(finalize_predictions(oof["P"].astype(np.float64), task), oof["y"])}
    threshold = label_thresholds(test, decision)
    if decision.get("applied"):
        print(
            f"multilabel label thresholds per class: {np.min(threshold):.4f} to {np.max(threshold):.4f} "
            f"(score quantiles chosen on the OOF blend; global quantile {decision['quantile']:.3f})"
        )
    else:
        print(f"multilabel label threshold: {threshold:.4f} (score quantile {decision['quantile']:.3f}, best OOF F1)")
    return threshold
