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
    Date,
    DateTime,
    Engine,
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
from ownlens_ml.data.parsers import (
    BOOL_WORDS,
    PARSERS,
    TIMESTAMP_RANGE,
    Problems,
    RawFrame,
    Reject,
    as_text,
    first_line,
    nested_mask,
    read_header,
    read_table_file,
    show_value,
)
from ownlens_ml.db import get_engine, require_tables, schema
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
            lines.append(
                f"| `{rule.name}` | {rule.kind} ({rule.sql_type}) | "
                f"{'yes' if rule.required else 'no'} | {rule.describe()} |"
            )
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
        name=col.name,
        kind=kind,
        sql_type=sql_type,
        required=not col.nullable and default is None,
        nullable=bool(col.nullable),
        default=default,
        max_length=max_length,
        low=low,
        high=high,
        allowed=_ALLOWED.get((table.name, col.name)),
        references=refs[0] if refs else None,
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
        return BOOL_WORDS[raw.strip("'").lower()]
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
            out.add_row(
                escape(str(f.path)),
                f"{f.rows_loaded:,}",
                f"{f.rows_rejected:,}",
                "\n".join(lines) if lines else "[green]ok[/]",
            )
        return out


def _validate_frame(
    spec: TableContract, frame: RawFrame, problems: Problems
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
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
        parser, bad_reason = PARSERS[rule.kind]
        nested = nested_mask(raw[name])
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
                reasons[before] = [f"is before {earlier} {show_value(v)!r}" for v in raw[earlier][before]]
                problems.add(before, later, reasons, kind=f"is before {earlier}")
    return out, usable


def _check_value_rules(rule: ColumnRule, values: pd.Series, ok: np.ndarray, problems: Problems) -> np.ndarray:
    """Type range, allowed values, string length and numeric range; the mask of values that pass.

    Each check sees only values that passed the ones before it, so a value gets one reason.
    """
    checks: list[tuple[Callable[[], pd.Series], str]] = []
    if rule.kind == "timestamp":
        low_t, high_t = TIMESTAMP_RANGE
        checks.append(
            (
                lambda: (values < low_t) | (values > high_t),
                f"is outside the timestamp range {low_t:%Y-%m-%d}..{high_t:%Y-%m-%d} (the platform's "
                "timestamps are nanoseconds)",
            )
        )
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
        checks.append(
            (lambda: (values < low_) | (values > high_), f"is out of range: must be {_range_text(rule.low, rule.high)}")
        )
    passed = ok.copy()
    for failing, reason in checks:
        bad = passed & failing().fillna(False).to_numpy(dtype=bool)
        problems.add(bad, rule.name, reason)
        passed &= ~bad
    return passed


def _check_keys_in_file(
    spec: TableContract, out: pd.DataFrame, usable: dict[str, np.ndarray], frame: RawFrame, problems: Problems
) -> None:
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
        problems.add(
            mask, "+".join(key), reasons, values=_key_values(frame.raw, key), kind=f"duplicates an earlier {frame.unit}"
        )


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
    parts = [as_text(raw[c]).fillna("") for c in key]
    out = parts[0]
    for part in parts[1:]:
        out = out + "/" + part
    return out


def _check_against_database(
    conn: Connection,
    spec: TableContract,
    out: pd.DataFrame,
    usable: dict[str, np.ndarray],
    frame: RawFrame,
    problems: Problems,
) -> None:
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
        found[col] = (
            pd.to_datetime(found[col]).astype(dtype)
            if pd.api.types.is_datetime64_dtype(dtype)
            else found[col].astype(dtype)
        )
    return found


# --- loading -----------------------------------------------------------------------------


def _load_ready(spec: TableContract, out: pd.DataFrame) -> pd.DataFrame:
    """The typed frame as ``copy_frame`` takes it: non-nullable booleans as plain bools."""
    out = out.copy()
    for name, rule in spec.columns.items():
        if name in out and rule.kind == "boolean" and not rule.nullable:
            out[name] = out[name].astype(bool)
    return out


def import_files(
    settings: Settings, table: str, files: Sequence[Path], *, max_rejects: int = MAX_LISTED_REJECTS
) -> ImportReport:
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
                raise ValidationError(
                    f"{exc}; committed before it (each file is all-or-nothing): {', '.join(done)}; "
                    "nothing of it or the files after it was loaded: import those again"
                ) from None
            raise
    return report


def _check_header(spec: TableContract, path: Path) -> None:
    header = read_header(path)
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise ValidationError(
            f"{path}: column(s) {', '.join(dupes)} appear more than once in the header; keep one of each"
        )
    unknown = [c for c in header if c not in spec.columns]
    if unknown:
        raise ValidationError(
            f"{path}: column(s) {', '.join(map(repr, unknown))} are not in table "
            f"{spec.name}; its columns: {', '.join(spec.columns)}"
        )
    missing = [c for c in spec.required if c not in header]
    if missing:
        raise ValidationError(
            f"{path}: missing required column(s) {', '.join(missing)} for table "
            f"{spec.name}; see docs/import-contract.md"
        )


def _import_one(engine: Engine, spec: TableContract, path: Path, max_rejects: int) -> FileReport:
    log.info("reading %s", path)
    frame = read_table_file(path)
    problems = Problems(frame, max_rejects)
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
        refused = Reject(
            None, None, None, f"the database refused the file: {first_line(getattr(exc, 'orig', None) or exc)}"
        )
    log.info("%s: %d rows loaded, %d rejected", path, loaded, int(problems.rejected.sum()))
    return FileReport(
        path=path,
        row_unit=frame.unit,
        rows_read=len(frame.raw),
        rows_loaded=loaded,
        rows_rejected=int(problems.rejected.sum()),
        problems=problems.count + (refused is not None),
        rejects=problems.rejects() + ((refused,) if refused else ()),
        kinds=tuple(sorted(problems.kinds.items(), key=lambda kv: -kv[1])),
    )
