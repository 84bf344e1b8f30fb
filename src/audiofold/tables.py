"""Reading label tables: ids stay strings (leading zeros kept), numeric columns become numbers."""

from __future__ import annotations

import csv
import io as _io
from pathlib import Path

import pandas as pd

from .errors import DataError


def _sniff_sep(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def read_table(path: str | Path, what: str = "table") -> pd.DataFrame:
    """Read a CSV (separator sniffed, UTF-8 or Latin-1) with every cell as text, then type columns.

    A column becomes numeric only when every non-empty cell parses as a number, so ids such as
    ``000123`` keep their zeros (callers use the raw text for ids).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path} not found. Check the path in config.yaml (data.*).")
    raw_bytes = path.read_bytes()
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            text = raw_bytes.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    if not text.strip():
        raise DataError(f"{what} {path} is empty.")
    sep = _sniff_sep(text[:20000])
    try:
        df = pd.read_csv(_io.StringIO(text), sep=sep, dtype=str, keep_default_na=True)
    except pd.errors.ParserError as exc:
        raise DataError(f"{what} {path}: cannot parse as CSV ({exc}).") from exc
    df.columns = [str(c).strip() for c in df.columns]
    dupes = df.columns[df.columns.duplicated()].tolist()
    if dupes:
        raise DataError(f"{what} {path}: duplicate column name(s) {dupes}.")
    df.attrs["path"] = str(path)
    df.attrs["raw"] = df.copy()
    for col in df.columns:
        values = df[col]
        numeric = pd.to_numeric(values, errors="coerce")
        if values.notna().any() and numeric.notna().sum() == values.notna().sum():
            df[col] = numeric
    return df


def raw_column(df: pd.DataFrame, column: str) -> list[str]:
    """The column's cells exactly as written in the file (ids)."""
    raw = df.attrs.get("raw", df)
    return [str(v).strip() for v in raw[column].tolist()]
