"""Reads as the recommender and trending read them (page views; for trending, paywall hits too): aggregated in SQL, one query each."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import text

from ownlens_ml.db import get_engine, require_tables
from ownlens_ml.errors import EmptyWindowError
from ownlens_ml.settings import Settings


def _epoch(dialect: str, column: str) -> str:
    """SQL for a timestamp column as whole seconds since 1970-01-01 UTC (SQLite stores naive UTC)."""
    if dialect == "postgresql":
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS BIGINT)"
    return f"CAST(strftime('%s', {column}) AS INTEGER)"


def _window(dialect: str, start: datetime | None, end: datetime | None) -> tuple[str, dict]:
    clauses, args = [], {}
    for name, value, op in (("start", start, ">="), ("end", end, "<")):
        if value is not None:
            clauses.append(f"{_epoch(dialect, 'e.event_at')} {op} :{name}")
            args[name] = int(pd.Timestamp(value).timestamp())
    return "".join(f" AND {c}" for c in clauses), args


def _page_views(settings: Settings, start: datetime | None, end: datetime | None, sql) -> pd.DataFrame:
    """Run ``sql(dialect, where)`` over the page views in [start, end); EmptyWindowError if none."""
    engine = get_engine(settings)
    require_tables(engine, "events", "articles")
    where, args = _window(engine.dialect.name, start, end)
    with engine.connect() as conn:
        frame = pd.read_sql_query(text(sql(engine.dialect.name, where)), conn, params=args)
    if frame.empty:
        raise EmptyWindowError(
            f"no page views between {start or 'the start'} and {end or 'the end'}; generate or import a platform first"
        )
    return frame.astype("int64")


def engaged_reads(settings: Settings, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """Per (reader, article): page views (``reads``), engaged ``seconds`` and the last read
    (``last_at``, epoch seconds) in [start, end).

    Raises:
        MissingTableError: the platform tables do not exist.
        EmptyWindowError: no page view in the window.
    """
    return _page_views(
        settings,
        start,
        end,
        lambda dialect, where: (
            "SELECT e.user_id, e.article_id, COUNT(*) AS reads, SUM(COALESCE(e.engaged_seconds, 0)) AS seconds, "
            f"MAX({_epoch(dialect, 'e.event_at')}) AS last_at FROM events e "
            f"WHERE e.event_type = 'page_view' AND e.article_id IS NOT NULL{where} GROUP BY e.user_id, e.article_id"
        ),
    )


def hourly_reads(settings: Settings, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """Attempted reads per UTC hour, brand and category: ``hour`` (epoch hours), ``brand_id``, ``category_id``, ``reads``.

    An attempted read is a page view or a paywall hit: a reader stopped by the paywall chose the
    article too, and counting both gives a quiet series about a third more reads to judge by.

    Raises:
        MissingTableError: the platform tables do not exist.
        EmptyWindowError: no page view in the window.
    """

    def sql(dialect: str, where: str) -> str:
        hour = f"({_epoch(dialect, 'e.event_at')} / 3600)"
        return (
            f"SELECT {hour} AS hour, a.brand_id, a.category_id, COUNT(*) AS reads "
            "FROM events e JOIN articles a ON a.article_id = e.article_id "
            f"WHERE e.event_type IN ('page_view', 'paywall_hit'){where} GROUP BY {hour}, a.brand_id, a.category_id"
        )

    return _page_views(settings, start, end, sql)


def articles(settings: Settings) -> pd.DataFrame:
    """Every article's id, brand, category and publish time (epoch seconds)."""
    engine = get_engine(settings)
    require_tables(engine, "articles")
    sql = (
        f"SELECT article_id, brand_id, category_id, {_epoch(engine.dialect.name, 'published_at')} AS published_at "
        "FROM articles"
    )
    with engine.connect() as conn:
        return pd.read_sql_query(text(sql), conn).astype("int64")
