"""Reading and parsing import files: every value as text, then typed column by column with a mask of what parsed.

``read_header`` and ``read_table_file`` read a CSV/TSV (compressed too) or Parquet file without
guessing types; the ``parse_*`` functions (``PARSERS`` by contract kind) turn a column of text into
typed values and say which parsed; ``Problems`` collects what did not, with line numbers. Used by
``data import`` (``ownlens_ml.data.importer``) and by a training job's own labels
(``ownlens_ml.pipelines.labels``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ownlens_ml.errors import ValidationError

TIMESTAMP_RANGE = (pd.Timestamp.min.ceil("D").tz_localize("UTC"), pd.Timestamp.max.floor("D").tz_localize("UTC"))
"""Timestamps the data layer holds (pandas nanoseconds, as the snapshot builder reads them), whole days."""
BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False}
_TZ_SUFFIX = re.compile(r"[T ]\d.*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")
_INT_TEXT = re.compile(r"[+-]?\d+(?:\.0*)?")
_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")
_SUFFIXES = {".csv": ",", ".tsv": "\t", ".parquet": None, ".pq": None}
_COMPRESSED = (".gz", ".bz2", ".zst", ".xz", ".zip")


@dataclass(frozen=True)
class Reject:
    """One problem with one row. ``row`` is None for a problem with the whole file."""

    row: int | None
    column: str | None
    value: str | None
    reason: str

    def describe(self, unit: str = "line") -> str:
        where = f"{unit} {self.row}: " if self.row is not None else ""
        what = f"{self.column} " if self.column else ""
        value = f"{self.value!r} " if self.value is not None else ""
        return f"{where}{what}{value}{self.reason}"


# --- reading -----------------------------------------------------------------------------


@dataclass
class RawFrame:
    """A file's raw values (as read) and the row number of each, for messages."""

    raw: pd.DataFrame
    rows: np.ndarray
    unit: str


def _format(path: Path) -> str | None:
    """The delimiter for CSV/TSV (also gzip-compressed), None for Parquet."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED and len(suffixes) > 1:
        suffixes = suffixes[:-1]
    if not suffixes or suffixes[-1] not in _SUFFIXES:
        raise ValidationError(f"{path}: unknown file type; use .csv, .tsv (optionally compressed) or .parquet")
    return _SUFFIXES[suffixes[-1]] or None


def _require_file(path: Path) -> None:
    if not path.is_file():
        if path.exists():  # a FIFO or a device (a symlink to /dev/zero) would block or never end
            raise ValidationError(f"{path}: not a regular file; give the path of a CSV, TSV or Parquet file")
        raise ValidationError(f"{path}: no such file; check the path")


def read_header(path: Path) -> list[str]:
    """Column names of a file, as written (duplicates kept), read without loading its rows."""
    _require_file(path)
    sep = _format(path)
    if sep is not None:
        _refuse_nul(path)
    try:
        if sep is None:
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        # header=None: the names come back as values, so pandas does not rename duplicates.
        head = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise ValidationError(f"{path}: the file is empty; expected a header line") from None
    except Exception as exc:  # noqa: BLE001 - any reader failure means the file is unreadable
        raise ValidationError(
            f"{path}: cannot read the file: {first_line(exc)}; give a CSV (.csv, .tsv) or Parquet file"
        ) from None
    return [str(c).strip() for c in head.iloc[0].tolist()]


def read_table_file(path: Path) -> RawFrame:
    """Every value of a CSV/TSV (compressed too) or Parquet file as text, with each row's line number.

    Raises:
        ValidationError: the file is missing, empty, of an unknown format or does not parse.
    """
    _require_file(path)  # checked again: the file may have gone since its header was read
    sep = _format(path)
    try:
        if sep is not None:
            _refuse_nul(path)
    except OSError as exc:
        raise ValidationError(f"{path}: cannot read the file: {exc.strerror}") from None
    try:
        if sep is None:
            raw = pd.read_parquet(path, dtype_backend="numpy_nullable")
            return RawFrame(raw.reset_index(drop=True), np.arange(1, len(raw) + 1), "row")
        raw = pd.read_csv(
            path,
            sep=sep,
            dtype="string[pyarrow]",
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
            encoding="utf-8-sig",
        )
    except Exception as exc:  # noqa: BLE001
        raise ValidationError(
            f"{path}: cannot read the file: {first_line(exc)}; give a CSV (.csv, .tsv) or Parquet file"
        ) from None
    raw.columns = [str(c).strip() for c in raw.columns]
    # Line numbers: header is line 1; a quoted field with newlines spans several lines.
    spans = np.zeros(len(raw), dtype=np.int64)
    for name in raw.columns:
        col = raw[name]
        if col.notna().any():
            spans += col.str.count("\n").fillna(0).to_numpy(dtype=np.int64)
    rows = 2 + np.arange(len(raw)) + np.concatenate([[0], np.cumsum(spans)[:-1]]) if len(raw) else np.zeros(0, np.int64)
    keep = raw.notna().any(axis=1).to_numpy()  # blank lines carry nothing
    return RawFrame(raw[keep].reset_index(drop=True), rows[keep], "line")


def _refuse_nul(path: Path) -> None:
    """pandas' CSV parser silently cuts a field at a NUL byte, so look for one in the text first
    (a compressed file's decompressed text, as pandas reads it)."""
    import mmap

    if path.suffix.lower() in _COMPRESSED:
        _refuse_nul_in_stream(path)
        return
    with path.open("rb") as f:
        if path.stat().st_size == 0:
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            pos = data.find(b"\x00")
            if pos >= 0:
                _nul_at(path, data[:pos].count(b"\n") + 1)


def _refuse_nul_in_stream(path: Path, chunk: int = 1 << 20) -> None:
    from pandas.io.common import get_handle

    try:
        with get_handle(path, "rb", compression="infer", is_text=False) as handles:
            lines = 1
            while data := handles.handle.read(chunk):
                pos = data.find(b"\x00")
                if pos >= 0:
                    _nul_at(path, lines + data[:pos].count(b"\n"))
                lines += data.count(b"\n")
    except ValidationError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged archive: unreadable, named with its cause
        raise ValidationError(f"{path}: cannot read the file: {first_line(exc)}") from None


def _nul_at(path: Path, line: int) -> None:
    raise ValidationError(
        f"{path}: line {line} contains a NUL byte (\\x00), which text columns cannot hold; remove it and import again"
    )


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name if it has none), for a one-line error."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# --- problems and parsers --------------------------------------------------------------


class Problems:
    """Problem masks over a frame: counts every problem, keeps the first few of each kind."""

    def __init__(self, frame: RawFrame, limit: int) -> None:
        self.frame = frame
        self.limit = limit
        self.rejected = np.zeros(len(frame.raw), dtype=bool)
        self.count = 0
        self.samples: list[tuple[int, int, Reject]] = []  # (position, order, reject)
        self.kinds: dict[str, int] = {}

    def add(
        self,
        mask: np.ndarray | pd.Series,
        column: str | None,
        reason: str | Sequence[str],
        values: pd.Series | None = None,
        kind: str | None = None,
    ) -> None:
        """Record ``reason`` for every row where ``mask`` holds.

        ``reason`` may be one string, or one per row (aligned with the frame) for reasons
        that name another row or value; then ``kind`` names them all for the summary.
        ``values`` defaults to the raw column.
        """
        mask = np.asarray(mask, dtype=bool)
        hits = np.flatnonzero(mask)
        if not len(hits):
            return
        self.rejected |= mask
        self.count += len(hits)
        label = " ".join(x for x in (column, reason if isinstance(reason, str) else kind) if x)
        self.kinds[label] = self.kinds.get(label, 0) + len(hits)
        if values is None and column is not None and column in self.frame.raw:
            values = self.frame.raw[column]
        for pos in hits[: self.limit]:
            value = None if values is None else show_value(values.iat[pos])
            why = reason if isinstance(reason, str) else reason[pos]
            self.samples.append((int(pos), len(self.samples), Reject(int(self.frame.rows[pos]), column, value, why)))

    def rejects(self) -> tuple[Reject, ...]:
        return tuple(r for _, _, r in sorted(self.samples)[: self.limit])


def show_value(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    out = str(value)
    return out if len(out) <= 60 else out[:57] + "…"


def as_text(raw: pd.Series) -> pd.Series:
    # Arrow-backed strings: .str methods run in Arrow compute, not a Python loop per value.
    return raw.astype("string[pyarrow]")


def parse_integer(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    present = raw.notna().to_numpy()
    if pd.api.types.is_bool_dtype(raw.dtype):
        return pd.Series(pd.NA, index=raw.index, dtype="Int64"), present
    if pd.api.types.is_unsigned_integer_dtype(raw.dtype) and (raw > 2**63 - 1).any():
        # kept unsigned (as Int64 it would wrap: 2**64 - 1 becomes -1), so the range check names them
        return raw.astype("UInt64"), np.zeros(len(raw), dtype=bool)
    if pd.api.types.is_integer_dtype(raw.dtype):
        return raw.astype("Int64"), np.zeros(len(raw), dtype=bool)
    if pd.api.types.is_float_dtype(raw.dtype):
        f = raw.astype("Float64")
        good = (f.notna() & (f % 1 == 0) & (f.abs() < 2.0**63)).fillna(False).to_numpy(dtype=bool)
        out = pd.Series(pd.NA, index=raw.index, dtype="Int64")
        out[good] = f[good].astype("Int64")
        return out, present & ~good
    t = as_text(raw).str.strip()
    shape_ok = t.str.fullmatch(_INT_TEXT).fillna(False).to_numpy(dtype=bool)
    digits = t.where(shape_ok).str.replace(r"\.0*$", "", regex=True)
    ndigits = digits.str.lstrip("+-").str.len().fillna(0).to_numpy()
    small = shape_ok & (ndigits <= 18)  # always fits int64, parsed exactly
    out = pd.Series(pd.NA, index=raw.index, dtype="Int64")
    if small.any():
        out[small] = pd.to_numeric(digits[small]).astype("Int64")
    big = np.flatnonzero(shape_ok & (ndigits > 18))  # rare: check each against int64
    fits = np.zeros(len(raw), dtype=bool)
    for pos in big:
        value = int(digits.iat[pos])
        if -(2**63) <= value < 2**63:
            out.iat[pos] = value
            fits[pos] = True
    return out, present & ~(small | fits)


def parse_float(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    present = raw.notna().to_numpy()
    if pd.api.types.is_bool_dtype(raw.dtype):
        return pd.Series(np.nan, index=raw.index), present
    if pd.api.types.is_numeric_dtype(raw.dtype):
        f = raw.astype("float64")
    else:
        f = pd.to_numeric(as_text(raw).str.strip(), errors="coerce").astype("float64")
    finite = np.isfinite(f.to_numpy(dtype="float64", na_value=np.nan))
    return f.where(finite), present & ~finite


def parse_boolean(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    present = raw.notna().to_numpy()
    if pd.api.types.is_bool_dtype(raw.dtype):
        return raw.astype("boolean"), np.zeros(len(raw), dtype=bool)
    if pd.api.types.is_numeric_dtype(raw.dtype):
        out = raw.map({1: True, 0: False})
    else:
        out = as_text(raw).str.strip().str.lower().map(BOOL_WORDS)
    out = out.astype("boolean")
    return out, present & out.isna().to_numpy()


def parse_timestamp(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    present = raw.notna().to_numpy()
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC").astype("datetime64[us, UTC]"), np.zeros(len(raw), dtype=bool)
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        return raw.dt.tz_localize("UTC").astype("datetime64[us, UTC]"), np.zeros(len(raw), dtype=bool)
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us, UTC]")
    if pd.api.types.is_numeric_dtype(raw.dtype) or pd.api.types.is_bool_dtype(raw.dtype):
        return out, present
    t = as_text(raw).str.strip()
    aware = t.str.contains(_TZ_SUFFIX).fillna(False).to_numpy(dtype=bool)
    # Parsed apart: pandas 2.x gives a naive string the offset of an aware one before it
    # when both are in one call.
    for group in (aware & present, ~aware & present):
        if group.any():
            out[group] = _iso_timestamps(t[group])
    return out, present & out.isna().to_numpy()


_YEAR = re.compile(r"^(\d{4})-")
_CYCLE_DAYS = 146_097
"""Days in 400 Gregorian years: the calendar repeats, so a date moved by whole cycles keeps its leap days."""


def _iso_timestamps(t: pd.Series) -> pd.Series:
    """ISO-8601 texts as UTC microseconds (NaT where not a timestamp), in every year 0001..9999.

    pandas parses into nanoseconds, which end in 1677 and 2262: a timestamp beyond is parsed
    in the same place of the 400-year cycle in 1800..2199 and moved back by whole cycles, so the
    range rule (``TIMESTAMP_RANGE``) refuses it as out of range, in CSV as in Parquet."""
    out = pd.to_datetime(t, format="ISO8601", utc=True, errors="coerce").astype("datetime64[us, UTC]")
    failed = t[out.isna().to_numpy()]
    year = pd.to_numeric(failed.str.extract(_YEAR, expand=False), errors="coerce").dropna().astype("int64")
    if year.empty:
        return out
    cycles = (year - 1800) // 400  # into 1800..2199
    moved = (year - 400 * cycles).astype(str) + failed[year.index].str.slice(4)
    near = pd.to_datetime(moved, format="ISO8601", utc=True, errors="coerce").dt.tz_localize(None)
    back = near.to_numpy(dtype="datetime64[us]") + (cycles.to_numpy() * _CYCLE_DAYS).astype("timedelta64[D]")
    out[year.index] = pd.Series(back, index=year.index).dt.tz_localize("UTC").where(near.notna())
    return out


def parse_date(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    present = raw.notna().to_numpy()
    if isinstance(raw.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(raw.dtype):
        naive = raw.dt.tz_convert("UTC").dt.tz_localize(None) if isinstance(raw.dtype, pd.DatetimeTZDtype) else raw
        naive = naive.astype("datetime64[ns]")
        good = (naive == naive.dt.normalize()).fillna(False).to_numpy(dtype=bool)
        return naive.where(good), present & ~good
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
    if pd.api.types.is_numeric_dtype(raw.dtype) or pd.api.types.is_bool_dtype(raw.dtype):
        return out, present
    t = as_text(raw).str.strip()
    shape_ok = t.str.fullmatch(_DATE_TEXT).fillna(False).to_numpy(dtype=bool)
    if shape_ok.any():
        out[shape_ok] = pd.to_datetime(t[shape_ok], format="%Y-%m-%d", errors="coerce")
    return out, present & out.isna().to_numpy()


def parse_string(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    # A NUL byte ends a string in SQLite's C API (the value would be stored cut short) and
    # PostgreSQL refuses it: such a value is bad input, not text.
    text = as_text(raw)
    return text, text.str.contains("\x00", regex=False).fillna(False).to_numpy(dtype=bool)


def nested_mask(raw: pd.Series) -> np.ndarray:
    """Parquet lists, arrays and structs (read as Python objects): text would store their repr."""
    if raw.dtype != object:
        return np.zeros(len(raw), dtype=bool)
    return raw.map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray))).to_numpy(dtype=bool)


PARSERS = {
    "integer": (parse_integer, "is not an integer"),
    "float": (parse_float, "is not a finite number"),
    "boolean": (parse_boolean, "is not a boolean (true, false, 1 or 0)"),
    "timestamp": (parse_timestamp, "is not an ISO-8601 timestamp"),
    "date": (parse_date, "is not a date (YYYY-MM-DD)"),
    "string": (parse_string, "contains a NUL byte (\\x00), which text columns cannot hold"),
}
