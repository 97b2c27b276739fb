"""A tiny hand-written platform whose every feature value can be worked out by hand."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine

from ownlens_ml.data.load import copy_frame
from ownlens_ml.db import schema

T0 = pd.Timestamp("2026-03-01", tz="UTC")


def ts(day: int, hour: float = 0.0, seconds: float = 0.0) -> pd.Timestamp:
    """Day offset from T0 plus hours and seconds."""
    return T0 + pd.Timedelta(days=day, hours=hour, seconds=seconds)


def load_tiny_platform(engine: Engine, sessions: list[tuple] | None = None) -> None:
    """Three readers, one author, three articles.

    ``sessions`` rows are (user_id, start, page_views, article_id); each session gets one
    page_view event per page view on that article, one second apart.
    """
    sessions = sessions if sessions is not None else DEFAULT_SESSIONS
    frames = {
        schema.brands: pd.DataFrame({"brand_id": [1], "name": ["Daily"], "domain": ["daily.example"]}),
        schema.countries: pd.DataFrame({"country_code": ["DE"], "name": ["Germany"], "region": ["Europe"]}),
        schema.device_types: pd.DataFrame({"device_type_id": [1, 2], "name": ["desktop", "mobile"]}),
        schema.categories: pd.DataFrame({"category_id": [1, 2, 3], "name": ["politics", "sport", "culture"]}),
        schema.users: pd.DataFrame(
            {
                "user_id": [1, 2, 3],
                "brand_id": 1,
                "signup_at": [ts(-100)] * 3,
                "country_code": "DE",
                "device_type_id": [1, 2, 1],
                "subscription_tier": "free",
                "subscribed_at": pd.NaT,
                "newsletter_opt_in": False,
            }
        ),
        schema.authors: pd.DataFrame(
            {"author_id": [1], "brand_id": [1], "name": ["A. Writer"], "joined_at": [ts(-400)]}
        ),
        schema.articles: pd.DataFrame(
            {
                "article_id": [10, 11, 12],
                "brand_id": 1,
                "author_id": 1,
                "category_id": [1, 2, 3],
                "topic": ["election", "football", "film"],
                "title": ["a", "b", "c"],
                "published_at": [ts(-2, 9), ts(0, 9), ts(3, 9)],
                "word_count": [800, 500, 1200],
                "is_premium": [False, True, False],
                "has_video": [False, False, True],
                "image_count": [1, 2, 3],
            }
        ),
    }
    rows, events = [], []
    event_id = 1
    for session_id, (user_id, start, page_views, article_id) in enumerate(sessions, start=1):
        rows.append(
            {
                "session_id": session_id,
                "user_id": user_id,
                "brand_id": 1,
                "started_at": start,
                "ended_at": start + pd.Timedelta(seconds=page_views),
                "device_type_id": 1,
                "referrer": "direct",
                "page_views": page_views,
                "engaged_seconds": 60 * page_views,
            }
        )
        for k in range(page_views):
            events.append(
                {
                    "event_id": event_id,
                    "session_id": session_id,
                    "user_id": user_id,
                    "article_id": article_id,
                    "event_type": "page_view",
                    "event_at": start + pd.Timedelta(seconds=k),
                    "scroll_depth": None,
                    "engaged_seconds": 60,
                }
            )
            event_id += 1
    frames[schema.sessions] = pd.DataFrame(rows)
    frames[schema.events] = pd.DataFrame(events)
    with engine.begin() as conn:
        for table, frame in frames.items():
            copy_frame(conn, table, frame)


DEFAULT_SESSIONS = [
    (1, ts(0, 10), 2, 11),
    (1, ts(1, 10), 3, 10),
    (1, ts(4, 23, 3599), 5, 12),  # the last second of day 4
    (2, ts(0, 9, 30 * 60), 1, 11),  # 30 minutes after article 11 was published
    (2, ts(2, 12), 4, 10),
]
