"""Article labels: how many readers an article reached in its first week."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from ownlens_ml.db import get_engine, require_tables, schema
from ownlens_ml.errors import EmptyWindowError
from ownlens_ml.models.spec import LabelWindow, as_utc
from ownlens_ml.settings import Settings

EARLY_HOURS = 24
"""Label time: this long after publish, when the first day's performance is known."""


def first_week_labels(settings: Settings, window: LabelWindow) -> pd.DataFrame:
    """One row per article whose first ``window.window_days`` days have closed by the cutoff.

    ``event_timestamp`` is publish time + 24 hours; ``label`` is log(1 + page views on the
    publish day and the following window_days - 1 UTC days). Articles published on the
    first day of data are left out (their first hours may precede it).
    """
    engine = get_engine(settings)
    a, p = schema.articles.c, schema.article_daily_performance.c
    require_tables(engine, schema.articles.name, schema.article_daily_performance.name)
    with engine.connect() as conn:
        articles = pd.DataFrame(
            conn.execute(select(a.article_id, a.author_id, a.published_at)).all(),
            columns=["article_id", "author_id", "published_at"],
        )
        daily = pd.DataFrame(
            conn.execute(select(p.article_id, p.date, p.page_views)).all(), columns=["article_id", "date", "page_views"]
        )
        first, last = conn.execute(select(func.min(p.date), func.max(p.date))).one()
    if daily.empty or articles.empty:
        raise EmptyWindowError(
            "article_performance: no articles with daily performance; run `ownlens-ml data "
            "generate` or import articles and article_daily_performance first"
        )
    first, last = pd.Timestamp(first, tz="UTC"), pd.Timestamp(last, tz="UTC")
    data_end = last + pd.Timedelta(days=1)
    cutoff = window.cutoff(first, data_end, "article_performance")
    articles["published_at"] = pd.to_datetime(articles["published_at"], utc=True)
    publish_day = articles["published_at"].dt.floor("D")
    closes = publish_day + pd.Timedelta(days=window.window_days)
    articles = articles[(publish_day > first) & (closes <= cutoff)]
    if articles.empty:
        raise EmptyWindowError(
            f"article_performance: daily performance covers {first.date()}..{last.date()}; "
            f"no article's first {window.window_days} days closed before {cutoff.date()}"
        )
    daily["date"] = pd.to_datetime(daily["date"]).dt.tz_localize("UTC")
    daily = daily.merge(articles[["article_id", "published_at"]], on="article_id")
    age = (daily["date"] - daily["published_at"].dt.floor("D")).dt.days
    views = daily[(age >= 0) & (age < window.window_days)].groupby("article_id")["page_views"].sum()
    return (
        pd.DataFrame(
            {
                "article_id": articles["article_id"].astype("int64").to_numpy(),
                "author_id": articles["author_id"].astype("int64").to_numpy(),
                "event_timestamp": (articles["published_at"] + pd.Timedelta(hours=EARLY_HOURS)).to_numpy(),
                "label": np.log1p(articles["article_id"].map(views).fillna(0).to_numpy(dtype=float)),
            }
        )
        .assign(event_timestamp=lambda f: pd.to_datetime(f["event_timestamp"], utc=True))
        .sort_values(["event_timestamp", "article_id"], ignore_index=True)
    )


def articles_at_label_time(settings: Settings, as_of: datetime) -> pd.DataFrame:
    """Articles that reached their 24-hour mark in the day before ``as_of`` (published 24 to
    48 hours before it): whom a daily batch of article performance scores then, so each
    article is forecast once, at about the age the model was trained at."""
    t = as_utc(as_of)
    a = schema.articles.c
    engine = get_engine(settings)
    require_tables(engine, schema.articles.name)
    since, until = t - pd.Timedelta(hours=2 * EARLY_HOURS), t - pd.Timedelta(hours=EARLY_HOURS)
    with engine.connect() as conn:
        rows = conn.execute(
            select(a.article_id, a.author_id)
            .where(a.published_at >= since.to_pydatetime(), a.published_at < until.to_pydatetime())
            .order_by(a.article_id)
        ).all()
    return pd.DataFrame(rows, columns=["article_id", "author_id"]).astype("int64")
