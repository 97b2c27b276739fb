"""Snapshot builder: daily per-user, per-author and per-article feature tables from raw events.

One set of SQL statements, written in the dialect PostgreSQL and DuckDB share, serves both
profiles: production runs it set-based inside PostgreSQL (delete the range, insert);
local runs it in DuckDB over the SQLite tables and rewrites the offline store's parquet
files. A snapshot stamped at time t uses only events before t, and rebuilding a range
replaces exactly that range, so builds are incremental and idempotent.

A build becomes visible only whole and checked: production writes every table and runs the
data quality checks in one transaction, committed only if they pass; local writes the new
files beside the old ones, checks them, then swaps them in.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
from sqlalchemy import Engine, text

from ownlens_ml.db import get_engine, job_lock, require_tables
from ownlens_ml.db.schema import FEATURE_TABLES, Table, customer_user_segments
from ownlens_ml.errors import DamagedStateError, EmptyWindowError, MissingTableError, StateFolderError, ValidationError
from ownlens_ml.features.quality import QualityReport, check_snapshots
from ownlens_ml.features.snapshot_files import snapshot_file
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)
HISTORY_DAYS = 30  # the longest window but one; author rows are computed with this much history before them
HABIT_DAYS = 90
"""The reader's long-run habits (``*_90d``): reader rows are computed with this much history before them."""
EARLY_HOURS = (0, 1, 6, 24)


def _ts(day: date) -> str:
    return f"CAST('{day.isoformat()} 00:00:00+00' AS TIMESTAMPTZ)"


def _popcount(expr: str, bits: int) -> str:
    # Portable popcount: PostgreSQL and DuckDB name their bit-count functions differently.
    return " + ".join(f"(({expr} >> {k}) & 1)" for k in range(bits)) or "0"


def user_features_sql(start: date, end: date, category_bits: int) -> str:
    """Rows of ``customer_user_features`` for snapshot days ``start`` .. ``end`` inclusive."""
    lo, hi = _ts(start - timedelta(days=HABIT_DAYS)), _ts(end)
    first = _ts(start)
    return f"""
WITH days AS (
    SELECT g.day FROM generate_series({lo}, {hi}, INTERVAL '1 day') AS g(day)
),
sess AS (
    SELECT s.user_id, date_trunc('day', s.started_at) + INTERVAL '1 day' AS day,
           COUNT(*) AS sessions, SUM(s.page_views) AS pageviews,
           SUM(s.engaged_seconds) AS engaged_seconds,
           SUM(CASE WHEN dt.name = 'mobile' THEN 1 ELSE 0 END) AS mobile,
           SUM(CASE WHEN EXTRACT(isodow FROM s.started_at) >= 6 THEN 1 ELSE 0 END) AS weekend,
           SUM(CASE WHEN EXTRACT(hour FROM s.started_at) BETWEEN 5 AND 11 THEN 1 ELSE 0 END) AS morning,
           MAX(s.started_at) AS last_start
    FROM sessions s JOIN device_types dt ON dt.device_type_id = s.device_type_id
    WHERE s.started_at >= {lo} - INTERVAL '1 day' AND s.started_at < {hi}
    GROUP BY 1, 2
),
ev AS (
    SELECT e.user_id, date_trunc('day', e.event_at) + INTERVAL '1 day' AS day,
           SUM(CASE WHEN e.event_type = 'share' THEN 1 ELSE 0 END) AS shares,
           SUM(CASE WHEN e.event_type = 'comment' THEN 1 ELSE 0 END) AS comments,
           SUM(CASE WHEN e.event_type = 'ad_click' THEN 1 ELSE 0 END) AS ad_clicks,
           SUM(CASE WHEN e.event_type = 'paywall_hit' THEN 1 ELSE 0 END) AS paywall_hits,
           SUM(CASE WHEN e.event_type = 'scroll' THEN e.scroll_depth END) AS scroll_sum,
           SUM(CASE WHEN e.event_type = 'scroll' THEN 1 ELSE 0 END) AS scrolls,
           BIT_OR(CASE WHEN e.event_type = 'page_view' THEN CAST(1 AS BIGINT) << a.category_id ELSE 0 END) AS categories
    FROM events e LEFT JOIN articles a ON a.article_id = e.article_id
    WHERE e.event_at >= {lo} - INTERVAL '1 day' AND e.event_at < {hi}
    GROUP BY 1, 2
),
prior AS (
    SELECT user_id, MAX(started_at) AS last_start FROM sessions
    WHERE started_at < {lo} - INTERVAL '1 day' GROUP BY 1
),
newsletter AS (
    SELECT user_id, MIN(event_at) AS since FROM events
    WHERE event_type = 'newsletter_signup' GROUP BY 1
),
grid AS (
    SELECT u.user_id, d.day, u.signup_at, u.subscribed_at, u.newsletter_opt_in,
           u.country_code, u.brand_id, dt.name AS primary_device, nl.since AS newsletter_since,
           p.last_start AS prior_last_start,
           COALESCE(s.sessions, 0) AS sessions, COALESCE(s.pageviews, 0) AS pageviews,
           COALESCE(s.engaged_seconds, 0) AS engaged_seconds, COALESCE(s.mobile, 0) AS mobile,
           COALESCE(s.weekend, 0) AS weekend, COALESCE(s.morning, 0) AS morning, s.last_start,
           COALESCE(e.shares, 0) AS shares, COALESCE(e.comments, 0) AS comments,
           COALESCE(e.ad_clicks, 0) AS ad_clicks, COALESCE(e.paywall_hits, 0) AS paywall_hits,
           COALESCE(e.scroll_sum, 0) AS scroll_sum, COALESCE(e.scrolls, 0) AS scrolls,
           COALESCE(e.categories, 0) AS categories
    FROM users u
    JOIN days d ON d.day > u.signup_at
    JOIN device_types dt ON dt.device_type_id = u.device_type_id
    LEFT JOIN newsletter nl ON nl.user_id = u.user_id
    LEFT JOIN prior p ON p.user_id = u.user_id
    LEFT JOIN sess s ON s.user_id = u.user_id AND s.day = d.day
    LEFT JOIN ev e ON e.user_id = u.user_id AND e.day = d.day
),
win AS (
    SELECT g.*,
        SUM(sessions) OVER w7 AS sessions_7d, SUM(sessions) OVER w30 AS sessions_30d,
        SUM(sessions) OVER prev7 AS sessions_prev_7d,
        SUM(pageviews) OVER w7 AS pageviews_7d, SUM(pageviews) OVER w30 AS pageviews_30d,
        SUM(engaged_seconds) OVER w7 AS engaged_7d, SUM(engaged_seconds) OVER w30 AS engaged_30d,
        SUM(CASE WHEN sessions > 0 THEN 1 ELSE 0 END) OVER w7 AS active_days_7d,
        SUM(CASE WHEN sessions > 0 THEN 1 ELSE 0 END) OVER w30 AS active_days_30d,
        SUM(mobile) OVER w30 AS mobile_30d, SUM(weekend) OVER w30 AS weekend_30d,
        SUM(morning) OVER w30 AS morning_30d,
        SUM(shares) OVER w30 AS shares_30d, SUM(comments) OVER w30 AS comments_30d,
        SUM(ad_clicks) OVER w30 AS ad_clicks_30d,
        SUM(paywall_hits) OVER w7 AS paywall_hits_7d, SUM(paywall_hits) OVER w30 AS paywall_hits_30d,
        SUM(scroll_sum) OVER w30 AS scroll_sum_30d, SUM(scrolls) OVER w30 AS scrolls_30d,
        BIT_OR(categories) OVER w30 AS categories_30d,
        SUM(sessions) OVER w90 AS sessions_90d, SUM(pageviews) OVER w90 AS pageviews_90d,
        SUM(engaged_seconds) OVER w90 AS engaged_90d, SUM(paywall_hits) OVER w90 AS paywall_hits_90d,
        SUM(CASE WHEN sessions > 0 THEN 1 ELSE 0 END) OVER w90 AS active_days_90d,
        MAX(last_start) OVER (PARTITION BY user_id ORDER BY day ROWS UNBOUNDED PRECEDING) AS seen_start
    FROM grid g
    WINDOW w7 AS (PARTITION BY user_id ORDER BY day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW),
           w30 AS (PARTITION BY user_id ORDER BY day ROWS BETWEEN 29 PRECEDING AND CURRENT ROW),
           prev7 AS (PARTITION BY user_id ORDER BY day ROWS BETWEEN 13 PRECEDING AND 7 PRECEDING),
           w90 AS (PARTITION BY user_id ORDER BY day ROWS BETWEEN {HABIT_DAYS - 1} PRECEDING AND CURRENT ROW)
)
SELECT
    CAST(user_id AS BIGINT) AS user_id,
    day AS event_timestamp,
    CAST(sessions AS BIGINT) AS sessions_1d,
    CAST(sessions_7d AS BIGINT) AS sessions_7d,
    CAST(sessions_30d AS BIGINT) AS sessions_30d,
    CAST(pageviews AS BIGINT) AS pageviews_1d,
    CAST(pageviews_7d AS BIGINT) AS pageviews_7d,
    CAST(pageviews_30d AS BIGINT) AS pageviews_30d,
    CAST(engaged_seconds AS DOUBLE PRECISION) / 60 AS engaged_minutes_1d,
    CAST(engaged_7d AS DOUBLE PRECISION) / 60 AS engaged_minutes_7d,
    CAST(engaged_30d AS DOUBLE PRECISION) / 60 AS engaged_minutes_30d,
    CAST(active_days_7d AS BIGINT) AS active_days_7d,
    CAST(active_days_30d AS BIGINT) AS active_days_30d,
    CAST(shares_30d AS BIGINT) AS shares_30d,
    CAST(comments_30d AS BIGINT) AS comments_30d,
    CAST(ad_clicks_30d AS BIGINT) AS ad_clicks_30d,
    CAST(scroll_sum_30d AS DOUBLE PRECISION) / NULLIF(scrolls_30d, 0) AS avg_scroll_depth_30d,
    CAST({_popcount("categories_30d", category_bits)} AS BIGINT) AS category_diversity_30d,
    CAST(mobile_30d AS DOUBLE PRECISION) / NULLIF(sessions_30d, 0) AS mobile_share_30d,
    CAST(weekend_30d AS DOUBLE PRECISION) / NULLIF(sessions_30d, 0) AS weekend_share_30d,
    CAST(morning_30d AS DOUBLE PRECISION) / NULLIF(sessions_30d, 0) AS morning_share_30d,
    EXTRACT(EPOCH FROM (day - COALESCE(seen_start, prior_last_start))) / 86400.0 AS days_since_last_visit,
    EXTRACT(EPOCH FROM (day - signup_at)) / 86400.0 AS days_since_signup,
    CAST(COALESCE(sessions_prev_7d, 0) AS BIGINT) AS sessions_prev_7d,
    CAST(sessions_7d - COALESCE(sessions_prev_7d, 0) AS DOUBLE PRECISION)
        / GREATEST(sessions_7d + COALESCE(sessions_prev_7d, 0), 1) AS session_trend_7d,
    CAST(CASE WHEN subscribed_at < day THEN 1 ELSE 0 END AS BIGINT) AS is_subscriber,
    CAST(paywall_hits_7d AS BIGINT) AS paywall_hits_7d,
    CAST(paywall_hits_30d AS BIGINT) AS paywall_hits_30d,
    CAST(sessions_90d AS BIGINT) AS sessions_90d,
    CAST(pageviews_90d AS BIGINT) AS pageviews_90d,
    CAST(engaged_90d AS DOUBLE PRECISION) / 60 AS engaged_minutes_90d,
    CAST(active_days_90d AS BIGINT) AS active_days_90d,
    CAST(paywall_hits_90d AS BIGINT) AS paywall_hits_90d,
    CAST(paywall_hits_90d AS DOUBLE PRECISION) / NULLIF(pageviews_90d + paywall_hits_90d, 0) AS paywall_share_90d,
    CAST(active_days_7d AS DOUBLE PRECISION) * {HABIT_DAYS} / 7 / NULLIF(active_days_90d, 0) AS visit_trend_7d,
    (CAST(engaged_7d AS DOUBLE PRECISION) / NULLIF(pageviews_7d, 0))
        / NULLIF(CAST(engaged_90d AS DOUBLE PRECISION) / NULLIF(pageviews_90d, 0), 0) AS dwell_trend_7d,
    (CAST(pageviews_7d + paywall_hits_7d AS DOUBLE PRECISION) / NULLIF(sessions_7d, 0))
        / NULLIF(CAST(pageviews_90d + paywall_hits_90d AS DOUBLE PRECISION) / NULLIF(sessions_90d, 0), 0) AS depth_trend_7d,
    CAST(CASE WHEN newsletter_opt_in OR newsletter_since < day THEN 1 ELSE 0 END AS BIGINT) AS newsletter_subscriber,
    country_code,
    primary_device,
    CAST(brand_id AS BIGINT) AS brand_id
FROM win
WHERE day >= {first}
"""


def article_features_sql(start: date, end: date) -> str:
    """Rows of ``editorial_article_features`` stamped within [start - 1 day, end)."""
    lo, hi = _ts(start - timedelta(days=1)), _ts(end)
    offsets = " UNION ALL ".join(f"SELECT {h} AS hours" for h in EARLY_HOURS)

    def known(hours: int, expr: str) -> str:
        return f"CASE WHEN o.hours >= {hours} THEN {expr} END"

    return f"""
WITH offsets AS ({offsets}),
arts AS (
    SELECT * FROM articles
    WHERE published_at >= {lo} - INTERVAL '{max(EARLY_HOURS)} hours' AND published_at < {hi}
),
early AS (
    SELECT a.article_id,
        SUM(CASE WHEN e.event_type = 'page_view' AND e.event_at < a.published_at + INTERVAL '1 hour' THEN 1 ELSE 0 END) AS pv1,
        SUM(CASE WHEN e.event_type = 'page_view' AND e.event_at < a.published_at + INTERVAL '6 hours' THEN 1 ELSE 0 END) AS pv6,
        SUM(CASE WHEN e.event_type = 'page_view' THEN 1 ELSE 0 END) AS pv24,
        SUM(CASE WHEN e.event_type = 'page_view' THEN e.engaged_seconds ELSE 0 END) AS engaged24,
        SUM(CASE WHEN e.event_type = 'share' THEN 1 ELSE 0 END) AS shares24
    FROM arts a JOIN events e ON e.article_id = a.article_id
        AND e.event_at >= a.published_at AND e.event_at < a.published_at + INTERVAL '24 hours'
    WHERE e.event_at >= {lo} - INTERVAL '{max(EARLY_HOURS)} hours' AND e.event_at < {hi}
    GROUP BY a.article_id
)
SELECT * FROM (
    SELECT
        CAST(a.article_id AS BIGINT) AS article_id,
        a.published_at + o.hours * INTERVAL '1 hour' AS event_timestamp,
        CAST(a.brand_id AS BIGINT) AS brand_id,
        CAST(a.author_id AS BIGINT) AS author_id,
        CAST(a.category_id AS BIGINT) AS category_id,
        CAST(a.word_count AS BIGINT) AS word_count,
        CAST(CASE WHEN a.is_premium THEN 1 ELSE 0 END AS BIGINT) AS is_premium,
        CAST(CASE WHEN a.has_video THEN 1 ELSE 0 END AS BIGINT) AS has_video,
        CAST(a.image_count AS BIGINT) AS image_count,
        CAST(EXTRACT(hour FROM a.published_at) AS BIGINT) AS publish_hour,
        CAST(EXTRACT(EPOCH FROM a.published_at) AS BIGINT) AS published_at_epoch,
        CAST({known(1, "COALESCE(x.pv1, 0)")} AS BIGINT) AS pageviews_1h,
        CAST({known(6, "COALESCE(x.pv6, 0)")} AS BIGINT) AS pageviews_6h,
        CAST({known(24, "COALESCE(x.pv24, 0)")} AS BIGINT) AS pageviews_24h,
        {known(24, "CAST(COALESCE(x.engaged24, 0) AS DOUBLE PRECISION) / 60")} AS engaged_minutes_24h,
        CAST({known(24, "COALESCE(x.shares24, 0)")} AS BIGINT) AS shares_24h,
        CAST(o.hours AS BIGINT) AS early_hours_observed
    FROM arts a CROSS JOIN offsets o LEFT JOIN early x ON x.article_id = a.article_id
) t
WHERE event_timestamp >= {lo} AND event_timestamp < {hi}
"""


def author_features_sql(start: date, end: date) -> str:
    """Rows of ``editorial_author_features`` for snapshot days ``start`` .. ``end`` inclusive."""
    lo, hi, first = _ts(start - timedelta(days=HISTORY_DAYS)), _ts(end), _ts(start)
    return f"""
WITH days AS (
    SELECT g.day FROM generate_series({lo}, {hi}, INTERVAL '1 day') AS g(day)
),
published AS (
    SELECT author_id, date_trunc('day', published_at) + INTERVAL '1 day' AS day, COUNT(*) AS articles
    FROM articles WHERE published_at >= {lo} - INTERVAL '1 day' AND published_at < {hi}
    GROUP BY 1, 2
),
reads AS (
    SELECT a.author_id, date_trunc('day', e.event_at) + INTERVAL '1 day' AS day,
           SUM(CASE WHEN e.event_type = 'page_view' THEN 1 ELSE 0 END) AS pageviews,
           SUM(CASE WHEN e.event_type = 'page_view' THEN e.engaged_seconds ELSE 0 END) AS engaged_seconds,
           SUM(CASE WHEN e.event_type = 'share' THEN 1 ELSE 0 END) AS shares
    FROM events e JOIN articles a ON a.article_id = e.article_id
    WHERE e.event_at >= {lo} - INTERVAL '1 day' AND e.event_at < {hi}
    GROUP BY 1, 2
),
grid AS (
    SELECT au.author_id, d.day,
           COALESCE(p.articles, 0) AS articles, COALESCE(r.pageviews, 0) AS pageviews,
           COALESCE(r.engaged_seconds, 0) AS engaged_seconds, COALESCE(r.shares, 0) AS shares
    FROM authors au JOIN days d ON d.day > au.joined_at
    LEFT JOIN published p ON p.author_id = au.author_id AND p.day = d.day
    LEFT JOIN reads r ON r.author_id = au.author_id AND r.day = d.day
),
win AS (
    SELECT author_id, day,
        SUM(articles) OVER w30 AS articles_30d, SUM(pageviews) OVER w30 AS pageviews_30d,
        SUM(engaged_seconds) OVER w30 AS engaged_30d, SUM(shares) OVER w30 AS shares_30d
    FROM grid
    WINDOW w30 AS (PARTITION BY author_id ORDER BY day ROWS BETWEEN 29 PRECEDING AND CURRENT ROW)
)
SELECT
    CAST(author_id AS BIGINT) AS author_id,
    day AS event_timestamp,
    CAST(articles_30d AS BIGINT) AS articles_30d,
    CAST(pageviews_30d AS BIGINT) AS author_pageviews_30d,
    CAST(pageviews_30d AS DOUBLE PRECISION) / NULLIF(articles_30d, 0) AS author_pageviews_per_article_30d,
    CAST(engaged_30d AS DOUBLE PRECISION) / 60 AS author_engaged_minutes_30d,
    CAST(shares_30d AS BIGINT) AS author_shares_30d
FROM win
WHERE day >= {first}
"""


def reader_activity_sql(start: date, end: date) -> str:
    """Page views stamped within [start - 1 day, end): the batch source of the real-time view."""
    return f"""
SELECT CAST(user_id AS BIGINT) AS user_id, event_at AS event_timestamp,
       CAST(article_id AS BIGINT) AS last_article_id,
       CAST(engaged_seconds AS BIGINT) AS last_engaged_seconds
FROM events
WHERE event_type = 'page_view' AND event_at >= {_ts(start)} - INTERVAL '1 day' AND event_at < {_ts(end)}
"""


@dataclass(frozen=True)
class SnapshotSummary:
    """What a build wrote: rows per table for the snapshot days ``start`` .. ``end``."""

    start: date
    end: date
    rows: dict[str, int]
    quality: QualityReport | None = None
    """The checks run before the build became visible; None when built with ``check=False``."""


@dataclass(frozen=True)
class _Part:
    """One table of a build: its SQL and the stamped range [lo, hi) that the build owns."""

    sql: str
    lo: datetime
    hi: datetime
    key: str


def _parts(start: date, end: date, category_bits: int, with_activity: bool) -> dict[str, _Part]:
    """Daily tables own the stamps start..end; event-stamped tables own the events those
    snapshots summarise, [start - 1 day, end). Either way a build sees events before ``end``."""
    day0 = datetime.combine(start, datetime.min.time(), UTC)
    day1 = datetime.combine(end, datetime.min.time(), UTC)
    daily = (day0, day1 + timedelta(days=1))
    stamped = (day0 - timedelta(days=1), day1)
    parts = {
        "customer_user_features": _Part(user_features_sql(start, end, category_bits), *daily, "user_id"),
        "editorial_article_features": _Part(article_features_sql(start, end), *stamped, "article_id"),
        "editorial_author_features": _Part(author_features_sql(start, end), *daily, "author_id"),
    }
    if with_activity:
        parts["reader_activity"] = _Part(reader_activity_sql(start, end), *stamped, "user_id")
    return parts


def _event_span(engine: Engine, lo: datetime | None = None, hi: datetime | None = None) -> tuple:
    """First and last event, and whether any event falls in [lo, hi)."""
    from sqlalchemy import exists, func, select

    from ownlens_ml.db.schema import events

    with engine.connect() as conn:
        first, last = conn.execute(select(func.min(events.c.event_at), func.max(events.c.event_at))).one()
        inside = False
        if lo is not None and first is not None:
            if engine.dialect.name == "sqlite":  # naive UTC there
                lo, hi = lo.replace(tzinfo=None), hi.replace(tzinfo=None)
            inside = conn.execute(select(exists().where(events.c.event_at >= lo, events.c.event_at < hi))).scalar()
    return first, last, inside


def default_range(engine: Engine) -> tuple[date, date]:
    """Snapshot days covering all events: the day after the first event to the day after the last."""
    first, last, _ = _event_span(engine)
    if first is None:
        raise EmptyWindowError("the events table is empty; run `ownlens-ml data generate` or `data import` first")
    first, last = pd.Timestamp(first), pd.Timestamp(last)
    return (first.date() + timedelta(days=1), last.date() + timedelta(days=1))


def build_snapshots(
    settings: Settings, start: date | None = None, end: date | None = None, check: bool = True
) -> SnapshotSummary:
    """Compute the feature snapshot tables for days ``start`` .. ``end`` (inclusive).

    Args:
        settings: profile and locations.
        start: first snapshot day (values stamped at its 00:00 UTC); default: day after the first event.
        end: last snapshot day; default: the day after the last event.
        check: run the data quality checks on the build before it becomes visible; a
            failure leaves the previous snapshots exactly as they were.

    Raises:
        ValidationError: ``end`` is before ``start``, or the range reaches before the first
            event's day or after the day after the last event (those snapshots summarise nothing).
        EmptyWindowError: there are no events to build from in the range.
        MissingTableError: the platform tables do not exist.
        DataQualityError: ``check`` found problems; nothing was written.
        ConcurrentJobError: another build of the same database or state folder is running.
    """
    engine = get_engine(settings)
    require_tables(engine, "users", "sessions", "events", "articles", "authors")
    first_day, last_day = default_range(engine)
    start, end = start or first_day, end or last_day
    if end < start:
        raise ValidationError(f"snapshot range ends ({end}) before it starts ({start}); swap --start and --end")
    first, last, inside = None, None, False
    if first_day - timedelta(days=1) <= end and start <= last_day:
        if start < first_day - timedelta(days=1) or end > last_day:
            # days before the first event's or after the day after the last summarise nothing (all zeros)
            raise ValidationError(
                f"snapshot range {start}..{end} reaches outside the data: the events give snapshot days "
                f"{first_day - timedelta(days=1)}..{last_day}; choose days inside it (omit --start and --end for all "
                "of it)"
            )
        day0 = datetime.combine(start, datetime.min.time(), UTC)
        first, last, inside = _event_span(
            engine, day0 - timedelta(days=HISTORY_DAYS + 1), datetime.combine(end, datetime.min.time(), UTC)
        )
    if not inside:
        first, last = first or first_day - timedelta(days=1), last or last_day - timedelta(days=1)
        raise EmptyWindowError(
            f"no events in the {HISTORY_DAYS} days before or during {start}..{end} (events span "
            f"{pd.Timestamp(first):%Y-%m-%d}..{pd.Timestamp(last):%Y-%m-%d}); choose a range "
            "inside the data, or import or generate events first"
        )
    with engine.connect() as conn:
        max_category = conn.execute(text("SELECT MAX(category_id) FROM categories")).scalar() or 0
    if max_category > 62:
        raise ValidationError(f"category ids must be below 63 for the diversity bitmask; found {max_category}")
    parts = _parts(start, end, max_category + 1, with_activity=not settings.is_production)
    with job_lock(settings, engine, "features build"):
        if settings.is_production:
            rows, report = _build_postgres(settings, engine, parts, end if check else None)
        else:
            rows, report = _build_local(settings, engine, parts, end if check else None)
    log.info("snapshots %s..%s: %s", start, end, rows)
    return SnapshotSummary(start, end, rows, report)


NOT_WRITTEN = "; nothing was written: the previous snapshots are unchanged (fix the data, or build with --no-check)"


def _build_postgres(
    settings: Settings, engine: Engine, parts: dict[str, _Part], check_newest: date | None
) -> tuple[dict[str, int], QualityReport | None]:
    rows, report = {}, None
    with engine.connect() as conn:
        with conn.begin():
            conn.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")
            for name, part in parts.items():
                columns = ", ".join(_table(name).columns.keys())
                conn.execute(
                    text(f"DELETE FROM {name} WHERE event_timestamp >= :lo AND event_timestamp < :hi"),
                    {"lo": part.lo, "hi": part.hi},
                )
                rows[name] = conn.exec_driver_sql(
                    f"INSERT INTO {name} ({columns}) SELECT {columns} FROM ({part.sql.replace('%', '%%')}) q"
                ).rowcount
            if check_newest is not None:
                report = check_snapshots(settings, check_newest, conn=conn)
                if not report.ok:  # leaving the block by an exception rolls the build back
                    report.raise_for_problems(outcome=NOT_WRITTEN)
        for name in parts:
            conn.exec_driver_sql(f"ANALYZE {name}")
        conn.commit()
    return rows, report


def _table(name: str) -> Table:
    return next(t for t in FEATURE_TABLES if t.name == name)


SOURCE_COLUMNS = {
    "users": "user_id, brand_id, signup_at, country_code, device_type_id, subscribed_at, newsletter_opt_in",
    "sessions": "user_id, started_at, device_type_id, page_views, engaged_seconds",
    "events": "user_id, article_id, event_type, event_at, scroll_depth, engaged_seconds",
    "articles": "article_id, brand_id, author_id, category_id, published_at, word_count, is_premium, has_video, image_count",
    "authors": "author_id, joined_at",
    "device_types": "device_type_id, name",
}
TIMESTAMP_COLUMNS = {"signup_at", "subscribed_at", "started_at", "event_at", "published_at", "joined_at"}


def _local_duckdb(engine: Engine) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB holding the platform columns the snapshot SQL reads."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    with sqlite3.connect(engine.url.database) as lite:
        for table, columns in SOURCE_COLUMNS.items():
            frame = pd.read_sql_query(f"SELECT {columns} FROM {table}", lite)
            for col in TIMESTAMP_COLUMNS & set(frame.columns):
                frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601")
            con.register(f"{table}_frame", frame)
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM {table}_frame")
            con.unregister(f"{table}_frame")
    return con


def _build_local(
    settings: Settings, engine: Engine, parts: dict[str, _Part], check_newest: date | None
) -> tuple[dict[str, int], QualityReport | None]:
    """Write the new files into a staging folder, check them there, then swap them in."""
    try:
        settings.offline_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(settings.offline_dir)
        staging = settings.offline_dir / f".build-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        _ensure_segments_file(settings)
    except OSError as exc:
        raise StateFolderError(
            f"cannot write snapshots into {settings.offline_dir}: {exc.strerror}; "
            "make the state folder writable or set OWNLENS_HOME"
        ) from None
    con = _local_duckdb(engine)
    report = None
    try:
        rows = {
            name: _rewrite_parquet(con, settings.offline_dir / f"{name}.parquet", staging / f"{name}.parquet", part)
            for name, part in parts.items()
        }
        # reader_activity is no quality-checked table, but the checks read all three the same way
        for name in {t.name for t in FEATURE_TABLES} - parts.keys():
            if (settings.offline_dir / f"{name}.parquet").exists():
                shutil.copy2(settings.offline_dir / f"{name}.parquet", staging / f"{name}.parquet")
        if check_newest is not None:
            report = check_snapshots(settings, check_newest, folder=staging)
            report.raise_for_problems(outcome=NOT_WRITTEN)
        for name in parts:
            os.replace(staging / f"{name}.parquet", settings.offline_dir / f"{name}.parquet")
    finally:
        con.close()
        shutil.rmtree(staging, ignore_errors=True)
    return rows, report


def _remove_stale_staging(folder: Path) -> None:
    """Staging folders of builds that died before cleaning up (SIGKILL, power loss): their pid is gone."""
    for staging in folder.glob(".build-*"):
        pid = staging.name.removeprefix(".build-")
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            log.info("removing %s, left by a build that died", staging)
            shutil.rmtree(staging, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _ensure_segments_file(settings: Settings) -> None:
    """An empty ``customer_user_segments`` file until the segmentation model writes one (or in place
    of a damaged one): every source's file must exist for a plain ``feast materialize`` of all views
    (PostgreSQL has the table)."""
    path = settings.offline_dir / f"{customer_user_segments.name}.parquet"
    if not _readable(path):
        # microsecond timestamps and a string column, as the written file has: Spark refuses
        # parquet TIMESTAMP(NANOS) and an all-null column's type
        pd.DataFrame(
            {
                "user_id": pd.Series(dtype="int64"),
                "event_timestamp": pd.Series(dtype="datetime64[us, UTC]"),
                "segment_name": pd.Series(dtype="string"),
                "segment_model_version": pd.Series(dtype="int64"),
            }
        ).to_parquet(path, index=False)


def _readable(path: Path) -> bool:
    """Whether the current snapshot ``path`` holds rows to keep: a damaged file is rebuilt from the events."""
    try:
        snapshot_file(path)
    except MissingTableError:
        return False
    except DamagedStateError as exc:
        log.warning("%s; replacing it with the rows of this build", str(exc).split("; run")[0])
        return False
    return True


def _rewrite_parquet(con: duckdb.DuckDBPyConnection, path: Path, out: Path, part: _Part) -> int:
    """Write to ``out`` the rows of ``path`` outside [part.lo, part.hi) plus the fresh rows."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE fresh AS {part.sql}")
    kept = "SELECT * FROM fresh"
    if _readable(path):
        kept = (
            f"SELECT * FROM read_parquet('{path}') "
            f"WHERE event_timestamp < CAST('{part.lo.isoformat()}' AS TIMESTAMPTZ) "
            f"OR event_timestamp >= CAST('{part.hi.isoformat()}' AS TIMESTAMPTZ) "
            "UNION ALL BY NAME SELECT * FROM fresh"
        )
    con.execute(f"COPY ({kept} ORDER BY event_timestamp, {part.key}) TO '{out}' (FORMAT parquet)")
    return con.execute("SELECT COUNT(*) FROM fresh").fetchone()[0]
