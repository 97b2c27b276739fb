"""Import real CSV/Parquet files into the platform tables: every row validated, each file all-or-nothing.

The column contract of a table is derived from its SQLAlchemy definition in
``ownlens_ml.db.schema`` plus a few rules the schema cannot express (allowed values,
ranges, column order checks); ``docs/import-contract.md`` documents it and a test keeps
the two in sync. Checks are vectorized over whole columns, so a file of millions of rows
is validated without a Python loop per row.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.markup import escape
from rich.table import Table as RichTable
from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Engine,
    Date,
    DateTime,
    Float,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.exc import DBAPIError

from ownlens_ml.data.load import copy_frame
from ownlens_ml.db import get_engine, require_tables
from ownlens_ml.db import schema
from ownlens_ml.errors import ValidationError
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)

IMPORTABLE: dict[str, Table] = {t.name: t for t in schema.PLATFORM_TABLES}
"""Tables ``ownlens-ml data import`` accepts, in load order (parents first)."""

MAX_LISTED_REJECTS = 20
SUBSCRIPTION_TIERS = ("free", "paid")

# Rules the SQLAlchemy schema cannot say. Everything else is derived from the table.
_ALLOWED: dict[tuple[str, str], tuple[str, ...]] = {
    ("events", "event_type"): schema.EVENT_TYPES,
    ("users", "subscription_tier"): SUBSCRIPTION_TIERS,
    ("impressions", "surface"): schema.SURFACES,
}
_BOUNDS: dict[tuple[str, str], tuple[float, float]] = {
    ("events", "scroll_depth"): (0.0, 1.0),
    ("impressions", "position"): (1, 2**15 - 1),
}
_NOT_BEFORE: dict[str, tuple[tuple[str, str], ...]] = {
    # (later, earlier): where both are given, later >= earlier.
    "sessions": (("ended_at", "started_at"),),
    "users": (("subscribed_at", "signup_at"),),
}
_INT_RANGES = {
    "SMALLINT": (-(2**15), 2**15 - 1),
    "INTEGER": (-(2**31), 2**31 - 1),
    "BIGINT": (-(2**63), 2**63 - 1),
}
TIMESTAMP_RANGE = (pd.Timestamp.min.ceil("D").tz_localize("UTC"), pd.Timestamp.max.floor("D").tz_localize("UTC"))
"""Timestamps the data layer holds (pandas nanoseconds, as the snapshot builder reads them), whole days."""
_BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False}
_TZ_SUFFIX = re.compile(r"[T ]\d.*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")
_INT_TEXT = re.compile(r"[+-]?\d+(?:\.0*)?")
_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")
_SUFFIXES = {".csv": ",", ".tsv": "\t", ".parquet": None, ".pq": None}
_COMPRESSED = (".gz", ".bz2", ".zst", ".xz", ".zip")


# --- the contract ------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnRule:
    """What one column of an import file must hold.

    Attributes:
        name: column name, as in the table.
        kind: ``integer``, ``float``, ``string``, ``boolean``, ``timestamp`` or ``date``.
        required: the file must have the column and every row a value.
        default: value used where an optional, non-nullable column is absent or empty.
        nullable: empty values are allowed (stored as NULL).
        sql_type: the database type, for messages.
        max_length: longest allowed string.
        low, high: inclusive numeric range.
        allowed: the only values allowed.
        references: ``table.column`` that must already hold the value.
    """

    name: str
    kind: str
    required: bool
    nullable: bool
    sql_type: str
    default: object = None
    max_length: int | None = None
    low: float | None = None
    high: float | None = None
    allowed: tuple[str, ...] | None = None
    references: str | None = None

    def describe(self) -> str:
        """One line of rules for the documentation."""
        parts = []
        if self.allowed:
            parts.append("one of " + ", ".join(f"`{v}`" for v in self.allowed))
        if self.max_length and not self.allowed:
            parts.append(f"at most {self.max_length} characters")
        if self.low is not None or self.high is not None:
            parts.append(_range_text(self.low, self.high))
        if self.references:
            parts.append(f"must exist in `{self.references}`")
        if self.default is not None:
            parts.append(f"empty or absent means `{_default_text(self.default)}`")
        elif self.nullable:
            parts.append("may be empty")
        return "; ".join(parts) or "—"


@dataclass(frozen=True)
class TableContract:
    """The import contract of one table: its columns, unique keys and order checks."""

    table: Table
    columns: dict[str, ColumnRule]
    keys: tuple[tuple[str, ...], ...]
    not_before: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns.values() if c.required]

    def to_markdown(self) -> str:
        """The contract as a Markdown section."""
        lines = [f"### `{self.name}`", "", "| column | type | required | rules |", "|---|---|---|---|"]
        for rule in self.columns.values():
            lines.append(f"| `{rule.name}` | {rule.kind} ({rule.sql_type}) | "
                         f"{'yes' if rule.required else 'no'} | {rule.describe()} |")
        lines.append("")
        keys = "; ".join(" + ".join(f"`{c}`" for c in key) for key in self.keys)
        lines.append(f"Unique (within the file and against the database): {keys}.")
        for later, earlier in self.not_before:
            lines.append(f"Where both are given, `{later}` must not be before `{earlier}`.")
        return "\n".join(lines)


def contract(table: str) -> TableContract:
    """The import contract of a platform table.

    Raises:
        ValidationError: ``table`` is not an importable platform table.
    """
    if table not in IMPORTABLE:
        raise ValidationError(f"unknown table {table!r}; importable tables: {', '.join(IMPORTABLE)}")
    return _contract(IMPORTABLE[table])


def _contract(table: Table) -> TableContract:
    rules = {col.name: _column_rule(table, col) for col in table.columns}
    keys = [tuple(c.name for c in table.primary_key.columns)]
    keys += [tuple(c.name for c in cons.columns) for cons in table.constraints if isinstance(cons, UniqueConstraint)]
    return TableContract(table=table, columns=rules, keys=tuple(keys), not_before=_NOT_BEFORE.get(table.name, ()))


def _column_rule(table: Table, col) -> ColumnRule:  # col: a sqlalchemy Column
    kind, sql_type, max_length = _kind(col.type)
    low = high = None
    if kind == "integer" and not (col.primary_key or col.foreign_keys):
        low = 0  # every non-key integer column of the platform is a count or a size
    if (table.name, col.name) in _BOUNDS:
        low, high = _BOUNDS[(table.name, col.name)]
    default = None
    if col.server_default is not None:
        arg = col.server_default.arg
        default = _parse_default(kind, arg if isinstance(arg, str) else arg.text)
    refs = [fk.target_fullname for fk in col.foreign_keys]
    return ColumnRule(
        name=col.name, kind=kind, sql_type=sql_type,
        required=not col.nullable and default is None,
        nullable=bool(col.nullable), default=default, max_length=max_length, low=low, high=high,
        allowed=_ALLOWED.get((table.name, col.name)), references=refs[0] if refs else None,
    )


def _kind(type_) -> tuple[str, str, int | None]:  # type_: a sqlalchemy type
    """(kind, SQL type name, maximum string length) of a column type."""
    # Order matters: BigInteger and SmallInteger are Integer subclasses.
    for cls, name in ((SmallInteger, "SMALLINT"), (BigInteger, "BIGINT"), (Integer, "INTEGER")):
        if isinstance(type_, cls):
            return "integer", name, None
    if isinstance(type_, Float):
        return "float", "DOUBLE", None
    if isinstance(type_, Boolean):
        return "boolean", "BOOLEAN", None
    if isinstance(type_, DateTime):
        return "timestamp", "TIMESTAMPTZ", None
    if isinstance(type_, Date):
        return "date", "DATE", None
    if isinstance(type_, Text):
        return "string", "TEXT", None
    if isinstance(type_, String):
        return "string", f"VARCHAR({type_.length})", type_.length
    raise TypeError(f"no import rule for column type {type_!r}")


def _parse_default(kind: str, raw: str) -> object:
    if kind == "boolean":
        return _BOOL_WORDS[raw.strip("'").lower()]
    return raw.strip("'")


def _default_text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"between {low:g} and {high:g}"
    return f"at least {low:g}" if low is not None else f"at most {high:g}"


def contract_markdown(tables: Iterable[str] = IMPORTABLE) -> str:
    """The generated part of ``docs/import-contract.md``: one section per table."""
    return "\n\n".join(contract(name).to_markdown() for name in tables) + "\n"


# --- the report --------------------------------------------------------------------------


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


@dataclass(frozen=True)
class FileReport:
    """What happened to one file.

    Attributes:
        path: the file.
        row_unit: ``line`` (CSV/TSV: line number in the file, header = line 1) or
            ``row`` (Parquet: 1-based data row).
        rows_read: data rows in the file (blank lines not counted).
        rows_loaded: rows written to the table (0 or ``rows_read``).
        rows_rejected: rows with at least one problem.
        problems: all problems found (a row can have several).
        rejects: the first problems, in file order, at most ``max_rejects``.
        kinds: every kind of problem (column and reason) with how often it occurs.
    """

    path: Path
    row_unit: str
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    problems: int
    rejects: tuple[Reject, ...] = ()
    kinds: tuple[tuple[str, int], ...] = ()

    @property
    def ok(self) -> bool:
        return self.problems == 0


@dataclass
class ImportReport:
    """The outcome of ``import_files``: one ``FileReport`` per file."""

    table: str
    files: list[FileReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    def as_table(self) -> RichTable:
        """A rich table: file, rows loaded, rows rejected and the first problems."""
        out = RichTable(title=f"import into {self.table}", title_justify="left")
        out.add_column("file")
        out.add_column("rows loaded", justify="right")
        out.add_column("rows rejected", justify="right")
        out.add_column("problems")
        for f in self.files:
            lines = [escape(r.describe(f.row_unit)) for r in f.rejects]
            if f.problems > len(f.rejects):
                lines.append(f"… {f.problems - len(f.rejects):,} more problems; all of them by kind:")
                lines += [escape(f"  {count:,} × {kind}") for kind, count in f.kinds]
            if not f.ok:
                lines.append("[bold]file not loaded[/]")
            out.add_row(escape(str(f.path)), f"{f.rows_loaded:,}", f"{f.rows_rejected:,}",
                        "\n".join(lines) if lines else "[green]ok[/]")
        return out


# --- reading -----------------------------------------------------------------------------


@dataclass
class _Frame:
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


def _header(path: Path) -> list[str]:
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
        head = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str,
                           keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise ValidationError(f"{path}: the file is empty; expected a header line") from None
    except Exception as exc:  # noqa: BLE001 - any reader failure means the file is unreadable
        raise ValidationError(f"{path}: cannot read the file: {_first(exc)}; "
                              "give a CSV (.csv, .tsv) or Parquet file") from None
    return [str(c).strip() for c in head.iloc[0].tolist()]


def _read(path: Path) -> _Frame:
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
            return _Frame(raw.reset_index(drop=True), np.arange(1, len(raw) + 1), "row")
        raw = pd.read_csv(path, sep=sep, dtype="string[pyarrow]", keep_default_na=False, na_values=[""],
                          skip_blank_lines=False, encoding="utf-8-sig")
    except Exception as exc:  # noqa: BLE001
        raise ValidationError(f"{path}: cannot read the file: {_first(exc)}; "
                              "give a CSV (.csv, .tsv) or Parquet file") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    # Line numbers: header is line 1; a quoted field with newlines spans several lines.
    spans = np.zeros(len(raw), dtype=np.int64)
    for name in raw.columns:
        col = raw[name]
        if col.notna().any():
            spans += col.str.count("\n").fillna(0).to_numpy(dtype=np.int64)
    rows = 2 + np.arange(len(raw)) + np.concatenate([[0], np.cumsum(spans)[:-1]]) if len(raw) else np.zeros(0, np.int64)
    keep = raw.notna().any(axis=1).to_numpy()  # blank lines carry nothing
    return _Frame(raw[keep].reset_index(drop=True), rows[keep], "line")


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
        raise ValidationError(f"{path}: cannot read the file: {_first(exc)}") from None


def _nul_at(path: Path, line: int) -> None:
    raise ValidationError(f"{path}: line {line} contains a NUL byte (\\x00), which text columns "
                          "cannot hold; remove it and import again")


def _first(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# --- validation --------------------------------------------------------------------------


class _Problems:
    """Problem masks over a frame: counts every problem, keeps the first few of each kind."""

    def __init__(self, frame: _Frame, limit: int) -> None:
        self.frame = frame
        self.limit = limit
        self.rejected = np.zeros(len(frame.raw), dtype=bool)
        self.count = 0
        self.samples: list[tuple[int, int, Reject]] = []  # (position, order, reject)
        self.kinds: dict[str, int] = {}

    def add(self, mask: np.ndarray | pd.Series, column: str | None, reason: str | Sequence[str],
            values: pd.Series | None = None, kind: str | None = None) -> None:
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
            value = None if values is None else _show(values.iat[pos])
            why = reason if isinstance(reason, str) else reason[pos]
            self.samples.append((int(pos), len(self.samples),
                                 Reject(int(self.frame.rows[pos]), column, value, why)))

    def rejects(self) -> tuple[Reject, ...]:
        return tuple(r for _, _, r in sorted(self.samples)[: self.limit])


def _show(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    out = str(value)
    return out if len(out) <= 60 else out[:57] + "…"


def _text(raw: pd.Series) -> pd.Series:
    # Arrow-backed strings: .str methods run in Arrow compute, not a Python loop per value.
    return raw.astype("string[pyarrow]")


def _parse_integer(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
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
    t = _text(raw).str.strip()
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


def _parse_float(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    present = raw.notna().to_numpy()
    if pd.api.types.is_bool_dtype(raw.dtype):
        return pd.Series(np.nan, index=raw.index), present
    if pd.api.types.is_numeric_dtype(raw.dtype):
        f = raw.astype("float64")
    else:
        f = pd.to_numeric(_text(raw).str.strip(), errors="coerce").astype("float64")
    finite = np.isfinite(f.to_numpy(dtype="float64", na_value=np.nan))
    return f.where(finite), present & ~finite


def _parse_boolean(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    present = raw.notna().to_numpy()
    if pd.api.types.is_bool_dtype(raw.dtype):
        return raw.astype("boolean"), np.zeros(len(raw), dtype=bool)
    if pd.api.types.is_numeric_dtype(raw.dtype):
        out = raw.map({1: True, 0: False})
    else:
        out = _text(raw).str.strip().str.lower().map(_BOOL_WORDS)
    out = out.astype("boolean")
    return out, present & out.isna().to_numpy()


def _parse_timestamp(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    present = raw.notna().to_numpy()
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC").astype("datetime64[us, UTC]"), np.zeros(len(raw), dtype=bool)
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        return raw.dt.tz_localize("UTC").astype("datetime64[us, UTC]"), np.zeros(len(raw), dtype=bool)
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us, UTC]")
    if pd.api.types.is_numeric_dtype(raw.dtype) or pd.api.types.is_bool_dtype(raw.dtype):
        return out, present
    t = _text(raw).str.strip()
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


def _parse_date(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    present = raw.notna().to_numpy()
    if isinstance(raw.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(raw.dtype):
        naive = raw.dt.tz_convert("UTC").dt.tz_localize(None) if isinstance(raw.dtype, pd.DatetimeTZDtype) else raw
        naive = naive.astype("datetime64[ns]")
        good = (naive == naive.dt.normalize()).fillna(False).to_numpy(dtype=bool)
        return naive.where(good), present & ~good
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
    if pd.api.types.is_numeric_dtype(raw.dtype) or pd.api.types.is_bool_dtype(raw.dtype):
        return out, present
    t = _text(raw).str.strip()
    shape_ok = t.str.fullmatch(_DATE_TEXT).fillna(False).to_numpy(dtype=bool)
    if shape_ok.any():
        out[shape_ok] = pd.to_datetime(t[shape_ok], format="%Y-%m-%d", errors="coerce")
    return out, present & out.isna().to_numpy()


def _parse_string(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    # A NUL byte ends a string in SQLite's C API (the value would be stored cut short) and
    # PostgreSQL refuses it: such a value is bad input, not text.
    text = _text(raw)
    return text, text.str.contains("\x00", regex=False).fillna(False).to_numpy(dtype=bool)


def _nested(raw: pd.Series) -> np.ndarray:
    """Parquet lists, arrays and structs (read as Python objects): text would store their repr."""
    if raw.dtype != object:
        return np.zeros(len(raw), dtype=bool)
    return raw.map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray))).to_numpy(dtype=bool)


_PARSERS = {
    "integer": (_parse_integer, "is not an integer"),
    "float": (_parse_float, "is not a finite number"),
    "boolean": (_parse_boolean, "is not a boolean (true, false, 1 or 0)"),
    "timestamp": (_parse_timestamp, "is not an ISO-8601 timestamp"),
    "date": (_parse_date, "is not a date (YYYY-MM-DD)"),
    "string": (_parse_string, "contains a NUL byte (\\x00), which text columns cannot hold"),
}


def _validate_frame(spec: TableContract, frame: _Frame,
                    problems: _Problems) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Check types, required values, allowed values, ranges, keys and order within the file.

    Returns:
        The typed frame (columns named as the table's) and a mask of values that parsed,
        so later checks skip values already reported as bad.
    """
    raw = frame.raw
    typed: dict[str, pd.Series] = {}
    usable: dict[str, np.ndarray] = {}
    for name, rule in spec.columns.items():
        if name not in raw:
            continue
        parser, bad_reason = _PARSERS[rule.kind]
        nested = _nested(raw[name])
        problems.add(nested, name, "is a list or struct; a column holds one value per row")
        values, bad = parser(raw[name])
        problems.add(bad & ~nested, name, bad_reason)
        bad |= nested
        missing = values.isna().to_numpy() & ~bad
        if rule.default is not None:
            values = values.fillna(rule.default)
        elif not rule.nullable:
            problems.add(missing, name, "is missing (required)")
        ok = ~bad & values.notna().to_numpy()
        ok = _check_value_rules(rule, values, ok, problems)
        typed[name] = values
        usable[name] = ok
    out = pd.DataFrame(typed)
    _check_keys_in_file(spec, out, usable, frame, problems)
    for later, earlier in spec.not_before:
        if later in out and earlier in out:
            both = usable[later] & usable[earlier]
            before = both & (out[later] < out[earlier]).fillna(False).to_numpy(dtype=bool)
            if before.any():
                reasons = np.empty(len(out), dtype=object)
                reasons[before] = [f"is before {earlier} {_show(v)!r}" for v in raw[earlier][before]]
                problems.add(before, later, reasons, kind=f"is before {earlier}")
    return out, usable


def _check_value_rules(rule: ColumnRule, values: pd.Series, ok: np.ndarray, problems: _Problems) -> np.ndarray:
    """Type range, allowed values, string length and numeric range; the mask of values that pass.

    Each check sees only values that passed the ones before it, so a value gets one reason.
    """
    checks: list[tuple[Callable[[], pd.Series], str]] = []
    if rule.kind == "timestamp":
        low_t, high_t = TIMESTAMP_RANGE
        checks.append((lambda: (values < low_t) | (values > high_t),
                       f"is outside the timestamp range {low_t:%Y-%m-%d}..{high_t:%Y-%m-%d} (the platform's "
                       "timestamps are nanoseconds)"))
    if rule.kind == "integer":
        low, high = _INT_RANGES[rule.sql_type]
        checks.append((lambda: (values < low) | (values > high), f"is out of range for {rule.sql_type}"))
    if rule.allowed is not None:
        checks.append((lambda: ~values.isin(rule.allowed), "is not one of " + ", ".join(rule.allowed)))
    if rule.max_length is not None:
        checks.append((lambda: values.str.len() > rule.max_length, f"is longer than {rule.max_length} characters"))
    if rule.low is not None or rule.high is not None:
        low_ = -np.inf if rule.low is None else rule.low
        high_ = np.inf if rule.high is None else rule.high
        checks.append((lambda: (values < low_) | (values > high_),
                       f"is out of range: must be {_range_text(rule.low, rule.high)}"))
    passed = ok.copy()
    for failing, reason in checks:
        bad = passed & failing().fillna(False).to_numpy(dtype=bool)
        problems.add(bad, rule.name, reason)
        passed &= ~bad
    return passed


def _check_keys_in_file(spec: TableContract, out: pd.DataFrame, usable: dict[str, np.ndarray],
                        frame: _Frame, problems: _Problems) -> None:
    for key, ok in _checkable_keys(spec, out, usable):
        sub = out.loc[ok, list(key)].assign(_row=frame.rows[ok])
        dup = sub.duplicated(list(key), keep="first")
        if not dup.any():
            continue
        first = sub.groupby(list(key), sort=False)["_row"].transform("first")[dup]
        at = np.flatnonzero(ok)[dup.to_numpy()]
        mask = np.zeros(len(out), dtype=bool)
        mask[at] = True
        reasons = np.empty(len(out), dtype=object)  # formatted for the duplicates only
        reasons[at] = [f"duplicates {frame.unit} {r}" for r in first.to_numpy()]
        problems.add(mask, "+".join(key), reasons, values=_key_values(frame.raw, key),
                     kind=f"duplicates an earlier {frame.unit}")


def _checkable_keys(spec: TableContract, out: pd.DataFrame, usable: dict[str, np.ndarray]):
    """Each unique key present in the file, with the rows whose key columns all parsed."""
    for key in spec.keys:
        if all(c in out for c in key):
            ok = np.logical_and.reduce([usable[c] for c in key])
            if ok.any():
                yield key, ok


def _key_values(raw: pd.DataFrame, key: Sequence[str]) -> pd.Series:
    if len(key) == 1:
        return raw[key[0]]
    parts = [_text(raw[c]).fillna("") for c in key]
    out = parts[0]
    for part in parts[1:]:
        out = out + "/" + part
    return out


def _check_against_database(conn: Connection, spec: TableContract, out: pd.DataFrame,
                           usable: dict[str, np.ndarray], frame: _Frame, problems: _Problems) -> None:
    """Foreign keys must exist in their parent tables; unique keys must not exist yet."""
    for name, rule in spec.columns.items():
        if rule.references is None or name not in out:
            continue
        parent, parent_col = rule.references.split(".")
        ok = usable[name]
        if not ok.any():
            continue
        found = _existing(conn, parent, [parent_col], out.loc[ok, [name]].set_axis([parent_col], axis=1))
        known = out[name].isin(found[parent_col]).fillna(False).to_numpy(dtype=bool)
        problems.add(ok & ~known, name, f"not found in {rule.references}")
    for key, ok in _checkable_keys(spec, out, usable):
        found = _existing(conn, spec.name, list(key), out.loc[ok, list(key)])
        if found.empty:
            continue
        hit = out[list(key)].merge(found.drop_duplicates().assign(_hit=True), on=list(key), how="left")["_hit"]
        mask = ok & hit.notna().to_numpy()
        problems.add(mask, "+".join(key), f"already in {spec.name}", values=_key_values(frame.raw, key))


def _existing(conn: Connection, table: str, cols: list[str], wanted: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``table`` (only ``cols``) whose first key column is among ``wanted``'s values.

    One query per check whatever the file size: an array parameter on PostgreSQL, a JSON
    list on SQLite. A composite key is narrowed by its first column and matched in pandas.
    """
    first = wanted[cols[0]]
    values = first.dropna().unique()
    if isinstance(first.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(first.dtype):
        raise TypeError("timestamp key columns are not supported here")
    values = [v.item() if hasattr(v, "item") else v for v in values]
    select = ", ".join(f'"{c}"' for c in cols)
    if pd.api.types.is_integer_dtype(first.dtype):
        # Appending new ids is the common case: one cheap range probe often settles it.
        probe = text(f'SELECT 1 FROM "{table}" WHERE "{cols[0]}" BETWEEN :lo AND :hi LIMIT 1')
        if conn.execute(probe, {"lo": min(values), "hi": max(values)}).first() is None:
            return pd.DataFrame({c: pd.Series([], dtype=wanted[c].dtype) for c in cols})
    if conn.dialect.name == "postgresql":
        sql = text(f'SELECT {select} FROM "{table}" WHERE "{cols[0]}" = ANY(:vals)')
        params = {"vals": values}
    else:
        sql = text(f'SELECT {select} FROM "{table}" WHERE "{cols[0]}" IN (SELECT value FROM json_each(:vals))')
        params = {"vals": json.dumps(values)}
    rows = conn.execute(sql, params).fetchall()
    found = pd.DataFrame(rows, columns=cols)
    for col in cols:  # the file's types, so that isin/merge compare like with like
        dtype = wanted[col].dtype
        found[col] = pd.to_datetime(found[col]).astype(dtype) if pd.api.types.is_datetime64_dtype(dtype) \
            else found[col].astype(dtype)
    return found


# --- loading -----------------------------------------------------------------------------


def _load_ready(spec: TableContract, out: pd.DataFrame) -> pd.DataFrame:
    """The typed frame as ``copy_frame`` takes it: non-nullable booleans as plain bools."""
    out = out.copy()
    for name, rule in spec.columns.items():
        if name in out and rule.kind == "boolean" and not rule.nullable:
            out[name] = out[name].astype(bool)
    return out


def import_files(settings: Settings, table: str, files: Sequence[Path], *,
                 max_rejects: int = MAX_LISTED_REJECTS) -> ImportReport:
    """Import CSV/TSV/Parquet files into a platform table, each file all-or-nothing.

    Every file's header is checked before any file is loaded, so a wrong column stops
    the whole import with nothing written. Then each file is read, validated (see
    ``docs/import-contract.md``) and, only if every row passes, written in one transaction.

    Args:
        settings: which database.
        table: a platform table, e.g. ``users``, ``events``, ``articles``.
        files: the files, loaded in the order given.
        max_rejects: how many problems to list per file (all are counted).

    Returns:
        One ``FileReport`` per file; ``ok`` only if every file loaded.

    Raises:
        ValidationError: unknown table, unreadable file, or a missing/unknown column.
        MissingTableError: the table or one it refers to does not exist yet.
    """
    spec = contract(table)
    paths = [Path(p) for p in files]
    if not paths:
        raise ValidationError("no files given")
    for path in paths:
        _check_header(spec, path)
    engine = get_engine(settings)
    parents = sorted({r.references.split(".")[0] for r in spec.columns.values() if r.references})
    require_tables(engine, spec.name, *parents)
    report = ImportReport(table=spec.name)
    for path in paths:
        try:
            report.files.append(_import_one(engine, spec, path, max_rejects))
        except ValidationError as exc:
            done = [f"{f.path} ({f.rows_loaded:,} rows)" for f in report.files if f.rows_loaded]
            if done:
                raise ValidationError(f"{exc}; committed before it (each file is all-or-nothing): {', '.join(done)}; "
                                      "nothing of it or the files after it was loaded: import those again") from None
            raise
    return report


def _check_header(spec: TableContract, path: Path) -> None:
    header = _header(path)
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise ValidationError(f"{path}: column(s) {', '.join(dupes)} appear more than once in the header; "
                              "keep one of each")
    unknown = [c for c in header if c not in spec.columns]
    if unknown:
        raise ValidationError(f"{path}: column(s) {', '.join(map(repr, unknown))} are not in table "
                              f"{spec.name}; its columns: {', '.join(spec.columns)}")
    missing = [c for c in spec.required if c not in header]
    if missing:
        raise ValidationError(f"{path}: missing required column(s) {', '.join(missing)} for table "
                              f"{spec.name}; see docs/import-contract.md")


def _import_one(engine: Engine, spec: TableContract, path: Path, max_rejects: int) -> FileReport:
    log.info("reading %s", path)
    frame = _read(path)
    problems = _Problems(frame, max_rejects)
    typed, usable = _validate_frame(spec, frame, problems)
    loaded = 0
    refused: Reject | None = None
    try:
        with engine.begin() as conn:
            _check_against_database(conn, spec, typed, usable, frame, problems)
            if problems.count == 0:
                loaded = copy_frame(conn, spec.table, _load_ready(spec, typed))
    except (DBAPIError, engine.dialect.loaded_dbapi.Error) as exc:
        # A constraint the checks did not see, or a concurrent writer; the transaction
        # rolled back, so nothing of the file was written.
        loaded = 0
        refused = Reject(None, None, None, f"the database refused the file: {_first(getattr(exc, 'orig', None) or exc)}")
    log.info("%s: %d rows loaded, %d rejected", path, loaded, int(problems.rejected.sum()))
    return FileReport(path=path, row_unit=frame.unit, rows_read=len(frame.raw), rows_loaded=loaded,
                      rows_rejected=int(problems.rejected.sum()), problems=problems.count + (refused is not None),
                      rejects=problems.rejects() + ((refused,) if refused else ()),
                      kinds=tuple(sorted(problems.kinds.items(), key=lambda kv: -kv[1])))
