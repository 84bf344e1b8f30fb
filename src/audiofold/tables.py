"""Reading label tables: ids stay strings (leading zeros kept), numeric columns become numbers."""

from __future__ import annotations

import csv
import io as _io
import logging
import unicodedata
from pathlib import Path

import pandas as pd
from pandas._libs.parsers import STR_NA_VALUES

from .errors import DataError

log = logging.getLogger(__name__)

# Tried in turn. cp1252 (Windows "ANSI") before Latin-1: it maps 0x80-0x9F to € ‘ ’ “ ” ... where
# Latin-1 has invisible control characters; Latin-1 decodes any byte, so it is the last resort.
ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
# Cells such as "NA" or "null" count as missing in numeric columns only: as ids or class names they
# are text (pandas' default would turn an id "NA" into NaN).
NUMERIC_MISSING = frozenset(STR_NA_VALUES)


def _sniff_sep(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def normalize_id(value) -> str:
    """An id as every step compares it: surrounding spaces dropped, Unicode in NFC form.

    NFC because macOS writes file names decomposed (NFD) while tables usually hold composed text.
    """
    return unicodedata.normalize("NFC", str(value).strip())


def decode_text(raw_bytes: bytes, path: Path) -> str:
    """The file's text; logs which encoding was used (a warning when it is not UTF-8)."""
    for encoding in ENCODINGS:
        try:
            text = raw_bytes.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding == "utf-8-sig":
            log.info("read %s as UTF-8", path)
        else:
            log.warning(
                "%s is not UTF-8; read it as %s. Check accented ids and labels, or save the table as UTF-8.",
                path,
                encoding,
            )
        return text
    raise AssertionError("latin-1 decodes any byte")  # pragma: no cover


def read_table(path: str | Path, what: str = "table") -> pd.DataFrame:
    """Read a CSV (separator sniffed, UTF-8, cp1252 or Latin-1) with every cell as text, then type columns.

    A column becomes numeric only when every non-missing cell parses as a number, so ids such as
    ``000123`` keep their zeros (callers use the raw text for ids). Text cells are stripped; empty
    text cells become NaN; ``NA``/``null``/``None`` stay text unless the column is numeric.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path} not found. Check the path in config.yaml (data.*).")
    text = decode_text(path.read_bytes(), path)
    if not text.strip():
        raise DataError(f"{what} {path} is empty.")
    sep = _sniff_sep(text[:20000])
    try:
        df = pd.read_csv(_io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.ParserError as exc:
        raise DataError(f"{what} {path}: cannot parse as CSV ({exc}).") from exc
    df.columns = [str(c).strip() for c in df.columns]
    dupes = df.columns[df.columns.duplicated()].tolist()
    if dupes:
        raise DataError(f"{what} {path}: duplicate column name(s) {dupes}.")
    if df.empty:
        raise DataError(f"{what} {path} has a header ({', '.join(df.columns)}) but no rows; is it the right file?")
    df.attrs["path"] = str(path)
    df.attrs["raw"] = df.copy()
    for col in df.columns:
        cells = df[col].str.strip()
        missing = cells.isin(NUMERIC_MISSING)
        numeric = pd.to_numeric(cells.where(~missing), errors="coerce")
        if (~missing).any() and numeric.notna().sum() == (~missing).sum():
            df[col] = numeric
        else:
            df[col] = cells.where(cells != "")
    return df


def raw_column(df: pd.DataFrame, column: str) -> list[str]:
    """The column's cells as written in the file, without surrounding spaces (paths, groups)."""
    raw = df.attrs.get("raw", df)
    return [str(v).strip() for v in raw[column].tolist()]


def id_column_values(df: pd.DataFrame, column: str, where: str) -> list[str]:
    """The id column as text (``normalize_id``); an empty cell is an error naming its row."""
    raw = df.attrs.get("raw", df)
    ids = []
    for i, v in enumerate(raw[column].tolist()):
        if v is None or (isinstance(v, float) and v != v) or not str(v).strip():
            raise DataError(
                f"{where}, row {i + 2}: the id cell (column {column!r}) is empty; every row needs an id. "
                "Fill it or drop the row."
            )
        ids.append(normalize_id(v))
    return ids


def check_unique_ids(ids: list[str], where: str) -> None:
    """Each id once; the error names both rows (header is row 1)."""
    seen: dict[str, int] = {}
    for i, v in enumerate(ids):
        if v in seen:
            raise DataError(f"{where}: id {v!r} appears on rows {seen[v] + 2} and {i + 2}; ids must be unique.")
        seen[v] = i


DATA_TABLES = {
    "train_csv": "training table (data.train_csv)",
    "test_csv": "test table (data.test_csv)",
    "sample_submission": "sample submission (data.sample_submission)",
}


def read_data_tables(data: dict) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """The config's ``data`` tables: (training, test or None, sample submission or None)."""
    train, test, sample = (read_table(data[k], what) if data.get(k) else None for k, what in DATA_TABLES.items())
    return train, test, sample
