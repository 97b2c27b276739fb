"""Data quality checks on the snapshot tables before they feed training or materialization.

Per table and day: row counts (no missing day, no day that collapses against the days
before it: a young platform's growth is not a defect), null rates (only columns that are
null by design may be null), value ranges, and freshness of the newest snapshot. A domain
the platform has no data for (e.g. no articles imported) is reported as absent, not as a
problem. The aggregates run where the data lives (PostgreSQL, or DuckDB over the local
parquet files); only one row per table-day comes back. ``snapshots.build_snapshots`` runs
the checks on a build before it becomes visible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
from sqlalchemy import Connection, Table, text

from ownlens_ml.db import get_engine, require_tables
from ownlens_ml.db.schema import FEATURE_TABLES
from ownlens_ml.errors import DataQualityError, MissingTableError
from ownlens_ml.features.snapshot_files import snapshot_file
from ownlens_ml.settings import Settings

NULL_BY_DESIGN = {
    "avg_scroll_depth_30d",
    "mobile_share_30d",
    "weekend_share_30d",
    "morning_share_30d",
    "days_since_last_visit",
    "author_pageviews_per_article_30d",
    "pageviews_1h",
    "pageviews_6h",
    "pageviews_24h",
    "engaged_minutes_24h",
    "shares_24h",
    "paywall_share_90d",
    "visit_trend_7d",
    "dwell_trend_7d",
    "depth_trend_7d",
}
"""Columns whose null means "nothing to measure yet" (documented in their descriptions)."""

FRACTIONS = {"avg_scroll_depth_30d", "mobile_share_30d", "weekend_share_30d", "morning_share_30d", "paywall_share_90d"}
FLAGS = {"is_subscriber", "newsletter_subscriber", "is_premium", "has_video"}
BOUNDS = {"session_trend_7d": (-1.0, 1.0), "publish_hour": (0.0, 23.0)}
DAILY = {"customer_user_features", "editorial_author_features"}
MIN_DAY_SHARE = 0.5
"""A day with fewer rows than this share of the largest day before it is reported as collapsed."""
PLATFORM_SOURCE = {
    "customer_user_features": "users",
    "editorial_article_features": "articles",
    "editorial_author_features": "authors",
}
"""The platform table each snapshot table summarises: when it is empty, the domain is absent."""


def _bounds(column: str) -> tuple[float, float]:
    if column in FRACTIONS or column in FLAGS:
        return 0.0, 1.0
    return BOUNDS.get(column, (0.0, float("inf")))


@dataclass(frozen=True)
class Problem:
    table: str
    column: str | None
    day: date | None
    message: str

    def __str__(self) -> str:
        where = ".".join(p for p in (self.table, self.column) if p)
        return f"{where} on {self.day}: {self.message}" if self.day else f"{where}: {self.message}"


@dataclass
class QualityReport:
    """Problems found; empty means every check passed."""

    checked: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    """Snapshot tables left empty because the platform has no data for their domain."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self, limit: int = 10, outcome: str = "") -> None:
        """Raise ``DataQualityError`` listing the first ``limit`` problems, then ``outcome``
        (what the caller did or did not write)."""
        if self.problems:
            shown = "; ".join(str(p) for p in self.problems[:limit])
            more = f" (+{len(self.problems) - limit} more)" if len(self.problems) > limit else ""
            raise DataQualityError(f"{len(self.problems)} data quality problem(s): {shown}{more}{outcome}")


def _profile_sql(table: Table, source: str) -> str:
    parts = ["date_trunc('day', event_timestamp) AS day", "COUNT(*) AS n_rows"]
    for column in table.columns:
        if column.primary_key:
            continue
        parts.append(f"COUNT({column.name}) AS {column.name}__n")
        if column.name not in ("country_code", "primary_device"):
            parts += [f"MIN({column.name}) AS {column.name}__min", f"MAX({column.name}) AS {column.name}__max"]
    return f"SELECT {', '.join(parts)} FROM {source} GROUP BY 1 ORDER BY 1"


def _profiles(settings: Settings, folder: Path | None, conn: Connection | None) -> dict[str, pd.DataFrame]:
    out = {}
    if settings.is_production:
        if conn is None:
            with get_engine(settings).connect() as own:
                return _profiles(settings, folder, own)
        conn.exec_driver_sql("SET TIME ZONE 'UTC'")
        for table in FEATURE_TABLES:
            out[table.name] = pd.read_sql_query(text(_profile_sql(table, table.name)), conn)
        return out
    folder = folder or settings.offline_dir
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        for table in FEATURE_TABLES:
            path = snapshot_file(folder / f"{table.name}.parquet")
            out[table.name] = con.sql(_profile_sql(table, f"read_parquet('{path}')")).df()
    finally:
        con.close()
    return out


def daily_profiles(settings: Settings) -> dict[str, pd.DataFrame]:
    """Per snapshot table, one row per day: ``day``, ``n_rows`` and each column's non-null count (``<col>__n``)."""
    return _profiles(settings, None, None)


def _absent_domains(settings: Settings, conn: Connection | None) -> set[str]:
    """Snapshot tables whose platform source table has no rows."""
    if conn is None:
        with get_engine(settings).connect() as own:
            return _absent_domains(settings, own)
    return {
        name
        for name, source in PLATFORM_SOURCE.items()
        if conn.execute(text(f"SELECT COUNT(*) FROM (SELECT 1 FROM {source} LIMIT 1) t")).scalar() == 0
    }


def check_snapshots(
    settings: Settings,
    expected_newest: date | None = None,
    *,
    folder: Path | None = None,
    conn: Connection | None = None,
) -> QualityReport:
    """Run every check on every snapshot table.

    Args:
        settings: profile and locations.
        expected_newest: the snapshot day the daily tables must have reached (freshness);
            default: skip the freshness check.
        folder: local profile: check the parquet files in this folder (a build not yet
            swapped in); default the offline store's.
        conn: production profile: check through this connection (a build's open
            transaction); default a new one.

    Raises:
        MissingTableError: the schema does not exist (before ``db init``), or a local snapshot
            file does not exist.
        DamagedStateError: a local snapshot file is not readable parquet of its table.
    """
    if conn is None:
        require_tables(get_engine(settings), *PLATFORM_SOURCE.values())
    report = QualityReport()
    absent = _absent_domains(settings, conn)
    for name, prof in _profiles(settings, folder, conn).items():
        table = next(t for t in FEATURE_TABLES if t.name == name)
        report.checked[name] = int(prof["n_rows"].sum()) if len(prof) else 0
        if prof.empty:
            if name in absent:
                report.absent.append(name)
            else:
                report.problems.append(Problem(name, None, None, "no rows; run `ownlens-ml features build`"))
            continue
        days = pd.to_datetime(prof["day"], utc=True).dt.date
        report.problems += _row_count_problems(name, days, prof["n_rows"])
        for column in table.columns:
            if column.primary_key:
                continue
            report.problems += _column_problems(name, column.name, days, prof)
        if expected_newest and name in DAILY and max(days) < expected_newest:
            report.problems.append(
                Problem(name, None, max(days), f"newest snapshot is {max(days)}, expected {expected_newest}")
            )
    return report


def _row_count_problems(name: str, days: pd.Series, counts: pd.Series) -> list[Problem]:
    problems = []
    if name in DAILY:
        present = set(days)
        day, last = min(present), max(present)
        while day <= last:
            if day not in present:
                problems.append(Problem(name, None, day, "no rows for this day"))
            day += timedelta(days=1)
        # Daily tables hold a row per reader (author) who had joined by the day, so a young
        # platform grows day by day; a day is collapsed when it falls below half of the
        # largest day before it, i.e. rows were lost.
        largest = 0
        for d, n in zip(days, counts):
            if n < MIN_DAY_SHARE * largest:
                problems.append(Problem(name, None, d, f"{n} rows, below half of an earlier day's {largest}"))
            largest = max(largest, n)
    return problems


def _column_problems(name: str, column: str, days: pd.Series, prof: pd.DataFrame) -> list[Problem]:
    problems = []
    nulls = prof["n_rows"] - prof[f"{column}__n"]
    if column not in NULL_BY_DESIGN:
        for d, n, total in zip(days, nulls, prof["n_rows"]):
            if n:
                problems.append(Problem(name, column, d, f"{n} of {total} values are null"))
    if f"{column}__min" in prof:
        lo, hi = _bounds(column)
        for d, vmin, vmax in zip(days, prof[f"{column}__min"], prof[f"{column}__max"]):
            if pd.notna(vmin) and (vmin < lo or vmax > hi):
                problems.append(Problem(name, column, d, f"values in [{vmin:g}, {vmax:g}] outside [{lo:g}, {hi:g}]"))
    return problems


def utc_midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


def newest_snapshot(settings: Settings) -> date:
    """The newest day of the daily reader snapshots."""
    sql = "SELECT MAX(event_timestamp) FROM {}"
    if settings.is_production:
        with get_engine(settings).connect() as conn:
            newest = conn.exec_driver_sql(sql.format("customer_user_features")).scalar()
    else:
        path = snapshot_file(settings.offline_dir / "customer_user_features.parquet")
        newest = duckdb.sql(sql.format(f"read_parquet('{path}')")).fetchall()[0][0]
    if newest is None:
        raise MissingTableError("customer_user_features is empty; run `ownlens-ml features build`")
    return pd.Timestamp(newest).tz_convert("UTC").date() if pd.Timestamp(newest).tzinfo else pd.Timestamp(newest).date()


def snapshot_span(settings: Settings, start: datetime, end: datetime) -> tuple[datetime | None, datetime | None, int]:
    """The reader snapshots' first and last stamp, and how many rows are stamped in [start, end]."""
    sql = (
        "SELECT MIN(event_timestamp), MAX(event_timestamp), "
        "SUM(CASE WHEN event_timestamp >= CAST('{lo}' AS TIMESTAMPTZ) AND event_timestamp <= CAST('{hi}' AS TIMESTAMPTZ) "
        "THEN 1 ELSE 0 END) FROM {source}"
    )
    sql = sql.replace("{lo}", start.isoformat()).replace("{hi}", end.isoformat())
    if settings.is_production:
        with get_engine(settings).connect() as conn:
            first, last, rows = conn.exec_driver_sql(sql.format(source="customer_user_features")).one()
    else:
        path = snapshot_file(settings.offline_dir / "customer_user_features.parquet")
        with duckdb.connect() as con:
            first, last, rows = con.sql(sql.format(source=f"read_parquet('{path}')")).fetchall()[0]
    return first, last, int(rows or 0)


def snapshot_cover(settings: Settings) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The moments point-in-time features exist for, UTC: the first reader snapshot to one day
    after the last (a daily snapshot is current for a day); None when there are no snapshots."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)  # any window: only the span is read
    first, last, _ = snapshot_span(settings, epoch, epoch)
    if first is None:
        return None
    first, last = pd.Timestamp(first), pd.Timestamp(last)
    first, last = (t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC") for t in (first, last))
    return first, last + pd.Timedelta(days=1)
